"""The installed pod at work: webhooks through the Service, probes, and the shipped RBAC."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest

from tests.cluster import deploy, webhooks
from tests.harness.polling import wait_for


@pytest.fixture(name="app_namespace")
def _app_namespace(installed: deploy.Installed) -> Iterator[str]:
    name = f"app-{uuid.uuid4().hex[:8]}"
    installed.node.kubectl("create", "namespace", name)
    yield name
    installed.node.kubectl("delete", "namespace", name, "--wait=false", check=False)


def refusals(logs: str) -> list[str]:
    """Log lines (JSON, one a line) that mention a 403 or Forbidden, times left out."""
    found = []
    for line in logs.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = line
        if isinstance(record, dict):
            record.pop("timestamp", None)
        text = json.dumps(record)
        if re.search(r"(?<!\d)403(?!\d)", text) or "forbidden" in text.lower():
            found.append(line)
    return found


def test_alert_through_the_service_becomes_an_observation(
    installed: deploy.Installed, app_namespace: str
) -> None:
    assert "200" == webhooks.curl_falco(installed, webhooks.falco_alert(app_namespace, "web-1"))
    found = wait_for(lambda: webhooks.observations(installed, app_namespace), timeout=30)
    assert 1 == len(found)
    spec = found[0]["spec"]
    assert isinstance(spec, dict)
    assert ("falco", "critical") == (spec["source"], spec["severity"])


def test_the_service_refuses_a_wrong_token(installed: deploy.Installed) -> None:
    """The token the Secret holds is enforced (the Secret the Deployment reads exists here)."""
    assert installed.secrets, "the Deployment reads no webhook token Secret"
    status, _ = deploy.post(
        installed.service_url() + "/falco/webhook", b"{}", token="not-the-token"
    )
    assert 401 == status


def test_probes_pass_and_rbac_suffices(installed: deploy.Installed, app_namespace: str) -> None:
    """After work through the webhook: the kubelet's probes never failed, nothing was
    forbidden (the logs say no 403; the write counter has no forbidden outcome)."""
    assert "200" == webhooks.curl_falco(installed, webhooks.falco_alert(app_namespace, "web-2"))
    wait_for(lambda: webhooks.observations(installed, app_namespace), timeout=30)
    pod = installed.ready_pods()[0]
    name = pod["metadata"]["name"]
    events = installed.node.kubectl(
        "get",
        "events",
        "-n",
        deploy.NAMESPACE,
        "--field-selector",
        f"involvedObject.name={name},reason=Unhealthy",
        "-o",
        "json",
    )
    # /readyz answers 503 until the informers have listed: readiness failures before the pod
    # first turned Ready are the design; a liveness failure, or any failure after, is not.
    ready_since = next(
        c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "Ready"
    )
    failures = [
        (event["message"], event["lastTimestamp"])
        for event in json.loads(events.stdout)["items"]
        if "Liveness" in event["message"] or event["lastTimestamp"] > ready_since
    ]
    assert [] == failures
    assert 0 == pod["status"]["containerStatuses"][0]["restartCount"]
    logs = installed.node.kubectl("logs", name, "-n", deploy.NAMESPACE).stdout
    assert logs, "the pod logged nothing"
    assert [] == refusals(logs)
    metrics = installed.metrics(pod["status"]["podIP"])
    samples = dict(
        line.rsplit(" ", 1) for line in metrics.splitlines() if line and not line.startswith("#")
    )
    writes = {
        k: float(v) for k, v in samples.items() if k.startswith("zen_watcher_api_writes_total")
    }
    assert any('outcome="ok"' in key and value > 0 for key, value in writes.items()), writes
    assert not {k: v for k, v in writes.items() if 'outcome="error"' in k and v > 0}
    refused = {k: v for k, v in samples.items() if "http_403" in k and float(v) > 0}
    assert {} == refused
