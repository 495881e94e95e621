"""The API server's own audit webhook backend posting to the daemon (docs/design.md §4, §6).

A second kube-apiserver on the session's etcd (an HA pair, as clusters run them) is started with
`--audit-webhook-config-file` pointing at the daemon, configured as README.md shows: HTTPS with
the daemon's CA, and the bearer token (the API server sends credentials only over TLS). The test
acts as admin through that server; the server batches its audit events into EventLists the way
every real cluster sends them (items without kind or apiVersion) and the daemon turns them into
Observations on the first server.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from tests.harness.controlplane import cluster, controlplane
from tests.harness.daemon_process import TOKEN, DaemonProcess
from tests.harness.daemons import StartDaemon, list_observations

pytestmark = pytest.mark.apiserver

# Everything at Request level (the rules read request bodies), as a cluster's policy might.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Request"}],
}


def webhook_kubeconfig(daemon: DaemonProcess, ca_file: Path) -> dict[str, Any]:
    """The audit backend's kubeconfig: the daemon's audit endpoint, its CA and bearer token."""
    server = f"https://127.0.0.1:{daemon.webhook_port}/audit/webhook"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "zen", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": "zen", "user": {"token": TOKEN}}],
        "contexts": [{"name": "zen", "context": {"cluster": "zen", "user": "zen"}}],
        "current-context": "zen",
    }


@pytest.fixture(name="audited_server")
def _audited_server(
    control_plane: cluster.Cluster, tmp_path: Path, start_daemon: StartDaemon
) -> Iterator[tuple[controlplane.ControlPlane, DaemonProcess]]:
    """The daemon, and a second API server sending it audit batches every second."""
    plane = control_plane.require_local()
    ca = trustme.CA()
    served = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = (tmp_path / f"{name}.pem" for name in ("ca", "cert", "key"))
    ca.cert_pem.write_to_path(str(ca_file))
    served.cert_chain_pems[0].write_to_path(str(cert_file))
    served.private_key_pem.write_to_path(str(key_file))
    daemon = start_daemon(WEBHOOK_TLS_CERT_FILE=str(cert_file), WEBHOOK_TLS_KEY_FILE=str(key_file))
    policy, hook = tmp_path / "audit-policy.yaml", tmp_path / "audit-webhook.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    hook.write_text(yaml.safe_dump(webhook_kubeconfig(daemon, ca_file)))
    audited = dataclasses.replace(
        plane,
        port=controlplane.free_port(),
        extra_apiserver_args=(
            f"--audit-policy-file={policy}",
            f"--audit-webhook-config-file={hook}",
            "--audit-webhook-mode=batch",
            "--audit-webhook-batch-max-wait=1s",
            "--audit-webhook-version=audit.k8s.io/v1",
        ),
    )
    audited.start_apiserver()
    try:
        yield audited, daemon
    finally:
        audited.stop_apiserver()


def wait_for_types(
    control_plane: cluster.Cluster, namespace: str, wanted: set[str], timeout: float = 60.0
) -> dict[str, dict[str, Any]]:
    """The audit Observations in `namespace` by eventType, once every wanted type is there."""
    deadline = time.monotonic() + timeout
    while True:
        found = {
            item["spec"]["eventType"]: item
            for item in list_observations(control_plane, namespace)
            if item["spec"]["source"] == "audit"
        }
        if wanted <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_api_server_audit_batches_become_observations(
    control_plane: cluster.Cluster,
    namespace: str,
    audited_server: tuple[controlplane.ControlPlane, DaemonProcess],
) -> None:
    """A cluster-admin binding and a NodePort Service made through the audited server arrive as
    Observations; no event of the server's batches is rejected."""
    audited, daemon = audited_server
    binding = f"zen-audit-{namespace}"
    through_audited = (f"--server={audited.url}",)
    control_plane.kubectl(
        *through_audited,
        "create",
        "clusterrolebinding",
        binding,
        "--clusterrole=cluster-admin",
        "--user=mallory",
    )
    control_plane.kubectl(
        *through_audited, "create", "service", "nodeport", "web", "--tcp=80", "-n", namespace
    )
    try:
        found = wait_for_types(
            control_plane, namespace, {"cluster_admin_binding", "nodeport_service"}
        )
    finally:
        control_plane.kubectl("delete", "clusterrolebinding", binding, check=False)

    counted = {key: value for key, value in daemon.metrics().items() if "audit" in key}
    assert {"cluster_admin_binding", "nodeport_service"} <= set(found), counted
    assert "critical" == found["cluster_admin_binding"]["spec"]["severity"]
    assert binding == found["cluster_admin_binding"]["spec"]["resource"]["name"]
    assert "web" == found["nodeport_service"]["spec"]["resource"]["name"]
    # The server's batches (its own loopback traffic included) were all read, none rejected.
    assert daemon.metric_sum("zen_watcher_webhook_requests_total", endpoint="/audit/webhook") > 0
    for status in ("400", "401"):
        assert 0 == daemon.metric_sum(
            "zen_watcher_webhook_requests_total", endpoint="/audit/webhook", status=status
        )
    assert 0 == daemon.metric_sum("zen_watcher_events_rejected_total", source="audit")
