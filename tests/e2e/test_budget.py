"""The etcd budget with the real daemon and API server: the least severe new findings wait first,
over-budget ones are accounted in their own bucket, and report findings that waited are written
once the budget frees."""

from __future__ import annotations

import orjson
import pytest

from tests.harness import reports as fx
from tests.harness.controlplane import cluster
from tests.harness.daemons import StartDaemon, list_observations
from tests.harness.payloads import unique_alert
from tests.harness.polling import wait_for
from zenwatcher.kube import observations
from zenwatcher.kube.client import KubeClient

pytestmark = pytest.mark.apiserver


def _falco_names(control_plane: cluster.Cluster, namespace: str) -> set[str]:
    return {
        item["metadata"]["name"]
        for item in list_observations(control_plane, namespace)
        if item["spec"]["source"] == "falco"
    }


async def test_counting_observations_takes_one_call(
    admin_client: KubeClient, control_plane: cluster.Cluster, namespace: str
) -> None:
    """The count the budget uses: a one-item list and the server's remainingItemCount."""
    for index in range(7):
        control_plane.kubectl(
            "apply", "-f", "-", stdin=orjson.dumps(_observation(namespace, index)).decode()
        )
    assert 7 == await observations.count_observations(admin_client, namespace=namespace)


def test_over_budget_findings_wait_least_severe_first(
    start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
) -> None:
    """A namespace budget of 5: medium alerts stop at 4 (90 %), a critical one still fits (5),
    and the rest are accounted over_budget. A report's critical findings wait until
    Observations are deleted, then are written without the report changing."""
    daemon = start_daemon(
        WATCH_NAMESPACE=namespace,
        OBSERVATION_BUDGET_PER_NAMESPACE="5",
        REPORT_RESOLVE_GRACE_SECONDS="1",
    )
    alerts = [unique_alert(index, namespace) for index in range(8)]  # priority Warning: medium
    status, _, answer = daemon.post("/falco/webhook", orjson.dumps(alerts))
    assert 200 == status, answer
    wait_for(
        lambda: daemon.metric_sum("zen_watcher_events_total", bucket="over_budget") == 4,
        timeout=30,
    )
    assert 4 == daemon.metric_sum("zen_watcher_events_total", source="falco", bucket="created")
    assert 4 == daemon.metric_sum(
        "zen_watcher_events_total", source="falco", bucket="over_budget", reason="namespace"
    )
    critical = unique_alert(100, namespace) | {"priority": "Critical"}
    assert 200 == daemon.post("/falco/webhook", orjson.dumps(critical))[0]
    wait_for(lambda: len(_falco_names(control_plane, namespace)) == 5, timeout=30)

    vulns = fx.placed(fx.load_fixture(fx.VULNS), namespace)  # two critical vulnerabilities
    fx.apply(control_plane, vulns)
    wait_for(
        lambda: (
            daemon.metric_sum("zen_watcher_events_total", source="trivy", bucket="over_budget") >= 2
        ),
        timeout=60,
    )
    assert set() == fx.finding_names(vulns) & set(fx.phases(control_plane, namespace))

    control_plane.kubectl(
        "delete", "observations", "-n", namespace, "-l", "zen.kube-zen.io/source=falco"
    )
    # The next count (every 10 s) finds room; the waiting findings are written, most severe
    # first, with no change to the report.
    wait_for(
        lambda: fx.finding_names(vulns) <= set(fx.phases(control_plane, namespace)), timeout=60
    )
    assert {"Open"} == {
        phase
        for name, phase in fx.phases(control_plane, namespace).items()
        if name in fx.finding_names(vulns)
    }
    assert 0 < daemon.metric_sum("zen_watcher_observation_budget_usage_ratio", scope="namespace")


def _observation(namespace: str, index: int) -> dict[str, object]:
    return {
        "apiVersion": "zen.kube-zen.io/v1alpha1",
        "kind": "Observation",
        "metadata": {"name": f"falco-{index:016x}", "namespace": namespace},
        "spec": {
            "source": "falco",
            "category": "security",
            "severity": "low",
            "eventType": "runtime_detection",
            "fingerprint": f"{index:064x}",
            "detectedAt": "2026-01-01T00:00:00Z",
            "ttlSecondsAfterCreation": 3600,
        },
    }
