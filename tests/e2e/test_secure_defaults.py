"""Secure by default: the shipped settings authenticate every webhook caller, with the Secret
and certificates made by README's own commands; running open takes an explicit setting, and
shows in the log and a metric."""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import yaml

from tests.harness.controlplane import cluster
from tests.harness.daemons import StartDaemon
from tests.harness.paths import REPO_ROOT
from tests.harness.payloads import unique_alert

SHIPPED_DEPLOYMENT = REPO_ROOT / "manifests/deployment/deployment.yaml"
SERVICE_NAME = "zen-watcher.zen-system.svc"  # the name README's serving certificate is for
# Running open on purpose: no credential and the explicit opt-in.
OPEN = {"WEBHOOK_AUTH_TOKEN": "", "WEBHOOK_ALLOW_UNAUTHENTICATED": "true"}


def readme_commands(marker: str) -> str:
    """The shell block README.md keeps between `<!-- marker:start -->` and `:end -->`."""
    readme = (REPO_ROOT / "README.md").read_text()
    found = re.search(
        rf"<!-- {marker}:start -->\n```sh\n(.*?)```\n<!-- {marker}:end -->", readme, re.DOTALL
    )
    assert found is not None, f"README.md has no {marker} block"
    return found.group(1)


def run_shell(commands: str, *, cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        ["sh", "-e", "-c", commands],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == result.returncode, result.stderr


def shipped_env(secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The shipped Deployment's environment, with its Secret references resolved from `secrets`
    ((name, key) -> value); downward-API values are set by the test's daemon helper."""
    deployment = yaml.safe_load(SHIPPED_DEPLOYMENT.read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        reference = item.get("valueFrom", {}).get("secretKeyRef")
        if reference is not None:
            assert not reference.get("optional", False), f"{item['name']} must be required"
            env[item["name"]] = secrets[(reference["name"], reference["key"])]
    return env


class TestShippedSettings:
    def test_no_credential_is_401_over_a_real_socket(
        self,
        control_plane: cluster.Cluster,
        start_daemon: StartDaemon,
        namespace: str,
        tmp_path: Path,
    ) -> None:
        """README's Secret command (in the test's namespace) makes the Secret the shipped
        Deployment requires; a daemon with that environment answers 401 to a caller without
        the token or with a wrong one, on both webhooks, and 200 with it."""
        kubectl = control_plane.kubectl_path
        env = {"KUBECONFIG": str(control_plane.kubeconfig("admin"))}
        if kubectl.is_absolute():  # the local control plane's kubectl is not on PATH
            env["PATH"] = f"{kubectl.parent}{os.pathsep}{os.environ['PATH']}"
        command = readme_commands("webhook-secret")
        assert "-n zen-system" in command
        run_shell(command.replace("-n zen-system", f"-n {namespace}"), cwd=tmp_path, env=env)
        secret = orjson.loads(
            control_plane.kubectl("get", "secret", "-n", namespace, "-o", "json").stdout
        )["items"]
        secrets = {
            (item["metadata"]["name"], key): base64.b64decode(value).decode()
            for item in secret
            for key, value in item.get("data", {}).items()
        }
        shipped = shipped_env(secrets)
        token = shipped["WEBHOOK_AUTH_TOKEN"]
        assert re.fullmatch(r"[0-9a-f]{64}", token)

        daemon = start_daemon(**shipped)
        body = orjson.dumps(unique_alert(1, namespace))
        for path in ("/falco/webhook", "/audit/webhook"):
            for credential in (None, "wrong", ""):
                status, headers, answer = daemon.post(path, body, token=credential)
                assert 401 == status, (path, credential)
                assert "Bearer" == headers["WWW-Authenticate"]
                assert "bearer token" in answer["error"]
        for source in ("falco", "audit"):  # (the leader's report informers count reports)
            assert 0 == daemon.metric_sum("zen_watcher_events_received_total", source=source)
        assert 200 == daemon.post("/falco/webhook", body, token=token)[0]
        assert 1 == daemon.metric_sum("zen_watcher_events_received_total", source="falco")
        assert 6 == daemon.metric_sum("zen_watcher_webhook_requests_total", status="401")
        assert 0 == daemon.metric_sum("zen_watcher_webhook_unauthenticated")
        assert not [e for e in daemon.log_events() if e.get("event") == "webhook_unauthenticated"]


class TestOpenByChoice:
    def test_opt_in_runs_open_with_a_warning_and_a_metric(
        self, start_daemon: StartDaemon, namespace: str
    ) -> None:
        """WEBHOOK_ALLOW_UNAUTHENTICATED=true and no credential: the daemon starts, warns once
        at start, sets zen_watcher_webhook_unauthenticated to 1, and accepts a caller without
        any credential."""
        daemon = start_daemon(**OPEN)
        warnings = [e for e in daemon.log_events() if e.get("event") == "webhook_unauthenticated"]
        assert 1 == len(warnings)
        assert "warning" == warnings[0]["level"]
        assert 1 == daemon.metric_sum("zen_watcher_webhook_unauthenticated")
        body = orjson.dumps(unique_alert(1, namespace))
        assert 200 == daemon.post("/falco/webhook", body, token=None)[0]


def post_over_tls(port: int, body: bytes, context: ssl.SSLContext) -> int | None:
    """POST /falco/webhook over TLS to 127.0.0.1, verifying the server as SERVICE_NAME; the
    status, or None when the server ends the connection without an answer."""
    request = (
        f"POST /falco/webhook HTTP/1.1\r\nHost: {SERVICE_NAME}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    answer = b""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=SERVICE_NAME) as tls,
        ):
            tls.sendall(request)
            while chunk := tls.recv(65536):
                answer += chunk
    except (ssl.SSLError, ConnectionError):
        return None
    return int(answer.split(b" ", 2)[1]) if answer else None


class TestFalcoMutualTlsFromReadme:
    def test_readme_certificates_admit_falco_and_only_with_its_certificate(
        self, start_daemon: StartDaemon, namespace: str, tmp_path: Path
    ) -> None:
        """README's openssl commands make a CA, a serving certificate for the Service name and
        Falco's client certificate; with the settings README names (and no token) Falco's
        certificate is admitted and a client without one is not."""
        run_shell(readme_commands("mtls-certs"), cwd=tmp_path)
        daemon = start_daemon(
            WEBHOOK_AUTH_TOKEN="",
            WEBHOOK_TLS_CERT_FILE=str(tmp_path / "tls.crt"),
            WEBHOOK_TLS_KEY_FILE=str(tmp_path / "tls.key"),
            WEBHOOK_TLS_CLIENT_CA_FILE=str(tmp_path / "ca.crt"),
        )
        assert 0 == daemon.metric_sum("zen_watcher_webhook_unauthenticated")
        body = orjson.dumps(unique_alert(1, namespace))
        falco = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        falco.load_cert_chain(str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
        assert 200 == post_over_tls(daemon.webhook_port, body, falco)

        anonymous = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        assert post_over_tls(daemon.webhook_port, body, anonymous) is None
        assert 1 == daemon.metric_sum("zen_watcher_events_received_total", source="falco")


@pytest.fixture(autouse=True)
def _no_secret_left(control_plane: cluster.Cluster, namespace: str) -> Iterator[None]:
    """The Secret made in the test's namespace goes with it (no namespace controller runs)."""
    yield
    control_plane.kubectl(
        "delete", "secret", "zen-watcher-webhook", "-n", namespace, "--ignore-not-found"
    )
