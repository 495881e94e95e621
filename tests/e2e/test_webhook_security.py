"""Who may post: mTLS as Falco's http_output does it, and the peer allow-list."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
import trustme

from tests.harness.daemon_process import DaemonProcess
from tests.harness.daemons import StartDaemon
from tests.harness.payloads import unique_alert


def https_post(
    daemon: DaemonProcess,
    body: bytes,
    *,
    context: ssl.SSLContext,
    headers: dict[str, str] | None = None,
) -> int:
    request = urllib.request.Request(
        f"https://127.0.0.1:{daemon.webhook_port}/falco/webhook",
        data=body,
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.fixture(name="pki")
def _pki(tmp_path: Path) -> dict[str, object]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate for Falco."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("falco")
    paths = {
        name: tmp_path / f"{name}.pem" for name in ("ca", "server_cert", "server_key", "client")
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["server_cert"]))
    server.private_key_pem.write_to_path(str(paths["server_key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client"]))
    return {"ca": ca, "paths": paths}


def mtls_daemon(
    start_daemon: StartDaemon, pki: dict[str, object], **env: str
) -> tuple[DaemonProcess, dict[str, Path]]:
    """A daemon serving TLS and verifying client certificates against the test CA."""
    paths = pki["paths"]
    assert isinstance(paths, dict)
    daemon = start_daemon(
        WEBHOOK_TLS_CERT_FILE=str(paths["server_cert"]),
        WEBHOOK_TLS_KEY_FILE=str(paths["server_key"]),
        WEBHOOK_TLS_CLIENT_CA_FILE=str(paths["ca"]),
        **env,
    )
    return daemon, paths


def client_context(paths: dict[str, Path], *, certificate: bool) -> ssl.SSLContext:
    """A client trusting the test CA, presenting the Falco client certificate or none."""
    context = ssl.create_default_context(cafile=str(paths["ca"]))
    if certificate:
        context.load_cert_chain(str(paths["client"]))
    return context


class TestMutualTls:
    def test_client_certificate_or_token(
        self, start_daemon: StartDaemon, namespace: str, pki: dict[str, object]
    ) -> None:
        """With a client CA and a token set: a verified client certificate is enough (Falco
        cannot send headers), and so is the token without a certificate (the API server's audit
        backend on the same port); neither gets 401."""
        daemon, paths = mtls_daemon(start_daemon, pki)
        body = orjson.dumps(unique_alert(1, namespace))
        assert 200 == https_post(daemon, body, context=client_context(paths, certificate=True))

        without_cert = client_context(paths, certificate=False)
        token = {"Authorization": "Bearer test-webhook-token"}
        assert 200 == https_post(daemon, body, context=without_cert, headers=token)
        assert 401 == https_post(daemon, body, context=without_cert)

    def test_without_a_token_the_certificate_is_required(
        self, start_daemon: StartDaemon, namespace: str, pki: dict[str, object]
    ) -> None:
        """Client CA and no token: a client without a certificate cannot even complete the
        handshake; one with a certificate from another CA neither."""
        daemon, paths = mtls_daemon(start_daemon, pki, WEBHOOK_AUTH_TOKEN="")
        body = orjson.dumps(unique_alert(3, namespace))
        assert 200 == https_post(daemon, body, context=client_context(paths, certificate=True))

        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            https_post(daemon, body, context=client_context(paths, certificate=False))
        stranger = trustme.CA().issue_cert("falco")
        foreign = client_context(paths, certificate=False)
        stranger.configure_cert(foreign)
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            https_post(daemon, body, context=foreign)

    def test_tls_without_client_ca_still_needs_the_token(
        self, start_daemon: StartDaemon, namespace: str, pki: dict[str, object]
    ) -> None:
        """Server-only TLS: the bearer token is still required."""
        paths = pki["paths"]
        assert isinstance(paths, dict)
        daemon = start_daemon(
            WEBHOOK_TLS_CERT_FILE=str(paths["server_cert"]),
            WEBHOOK_TLS_KEY_FILE=str(paths["server_key"]),
        )
        context = ssl.create_default_context(cafile=str(paths["ca"]))
        body = orjson.dumps(unique_alert(2, namespace))
        assert 401 == https_post(daemon, body, context=context)
        assert 200 == https_post(
            daemon, body, context=context, headers={"Authorization": "Bearer test-webhook-token"}
        )


class TestPeerAllowList:
    def test_peer_outside_the_list_is_refused(
        self, start_daemon: StartDaemon, namespace: str
    ) -> None:
        """WEBHOOK_ALLOWED_CIDRS without loopback: 403 with a reason, nothing processed."""
        daemon = start_daemon(WEBHOOK_ALLOWED_CIDRS="10.0.0.0/8")
        status, _, answer = daemon.post("/falco/webhook", orjson.dumps(unique_alert(1, namespace)))
        assert 403 == status
        assert "127.0.0.1" in answer["error"]
        assert 0 == daemon.metric_sum("zen_watcher_events_received_total", source="falco")

    def test_forwarded_for_is_believed_only_from_trusted_proxies(
        self, start_daemon: StartDaemon, namespace: str
    ) -> None:
        """X-Forwarded-For counts only when the TCP peer is a trusted proxy."""
        trusting = start_daemon(
            WEBHOOK_ALLOWED_CIDRS="10.1.0.0/16", WEBHOOK_TRUSTED_PROXIES="127.0.0.0/8"
        )
        untrusting = start_daemon(WEBHOOK_ALLOWED_CIDRS="10.1.0.0/16")
        body = orjson.dumps(unique_alert(1, namespace))
        for daemon, expected in ((trusting, 200), (untrusting, 403)):
            request = urllib.request.Request(
                daemon.url + "/falco/webhook",
                data=body,
                headers={
                    "Authorization": "Bearer test-webhook-token",
                    "X-Forwarded-For": "10.1.2.3",
                },
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status = int(response.status)
            except urllib.error.HTTPError as error:
                status = int(error.code)
            assert expected == status
