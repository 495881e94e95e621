"""The API server's own limit is the guard: no client-side limit by default (API_QPS 0), and
API Priority and Fairness pushes back with 429 + Retry-After, which the writer honours.

A FlowSchema puts the daemon's Observation creates in this test's namespace into a priority level
of its own with the smallest concurrency the server gives (nothing borrowed, nothing queued: the
excess is rejected at once). A burst of distinct Falco alerts then meets 429s, and every one
must still become its Observation, with nothing counted as failed.
"""

from __future__ import annotations

import re

import orjson
import yaml

from tests.harness.controlplane import cluster
from tests.harness.daemons import StartDaemon, list_observations
from tests.harness.payloads import unique_alert
from tests.harness.polling import wait_for

ALERTS = 300


def fairness_objects(namespace: str) -> str:
    """A priority level that rejects beyond its nominal concurrency, and the FlowSchema that
    sends the zen-watcher user's Observation creates in `namespace` to it."""
    name = f"zen-test-{namespace}"
    level = {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "PriorityLevelConfiguration",
        "metadata": {"name": name},
        "spec": {
            "type": "Limited",
            "limited": {
                "nominalConcurrencyShares": 1,
                "lendablePercent": 0,
                "borrowingLimitPercent": 0,
                "limitResponse": {"type": "Reject"},
            },
        },
    }
    schema = {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "priorityLevelConfiguration": {"name": name},
            "matchingPrecedence": 100,  # before the suggested schemas (workload-low is 9000)
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [{"kind": "User", "user": {"name": "zen-watcher"}}],
                    "resourceRules": [
                        {
                            "verbs": ["create"],
                            "apiGroups": ["zen.kube-zen.io"],
                            "resources": ["observations"],
                            "namespaces": [namespace],
                        }
                    ],
                }
            ],
        },
    }
    return yaml.safe_dump_all([level, schema])


def rejected_by_level(control_plane: cluster.Cluster, level: str) -> float:
    """apiserver_flowcontrol_rejected_requests_total for one priority level, from the API
    server's own /metrics."""
    text = control_plane.kubectl("get", "--raw", "/metrics").stdout
    total = 0.0
    pattern = re.compile(
        r'^apiserver_flowcontrol_rejected_requests_total\{[^}]*priority_level="'
        + re.escape(level)
        + r'"[^}]*\} (\S+)$',
        re.MULTILINE,
    )
    for match in pattern.finditer(text):
        total += float(match.group(1))
    return total


def test_priority_and_fairness_rejections_are_retried_and_nothing_is_lost(
    start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
) -> None:
    manifest = fairness_objects(namespace)
    control_plane.kubectl("apply", "-f", "-", stdin=manifest)
    try:
        daemon = start_daemon()  # API_QPS, WRITER_WORKERS, QUEUE_SIZE: the defaults
        # Batches of 100 queue 300 distinct findings at once: the 8 writers exceed the level.
        for start in range(0, ALERTS, 100):
            body = orjson.dumps([unique_alert(i, namespace) for i in range(start, start + 100)])
            status, _, answer = daemon.post("/falco/webhook", body)
            assert 200 == status, answer
            assert 100 == answer["accepted"]

        wait_for(lambda: len(list_observations(control_plane, namespace)) == ALERTS, timeout=120)
        assert rejected_by_level(control_plane, f"zen-test-{namespace}") > 0
        assert daemon.metric_sum("zen_watcher_api_retries_total") > 0
        assert 0 == daemon.metric_sum("zen_watcher_observations_create_errors_total")
        created = daemon.metric_sum("zen_watcher_events_total", source="falco", bucket="created")
        assert ALERTS == created
        counts = {item["status"]["count"] for item in list_observations(control_plane, namespace)}
        assert {1} == counts
    finally:
        control_plane.kubectl("delete", "-f", "-", stdin=manifest, check=False)
