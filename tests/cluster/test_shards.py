"""The shards example (manifests/examples/shards) with its webhook tier: each shard writes only
in its namespaces, and webhooks reach only the tier, which writes for any namespace.

Shard a watches the namespaces labelled zen.kube-zen.io/shard=a (team-a and team-c), shard b
those labelled =b (team-b and team-d); the write counters of each pod
(creates answered OK) must match the findings of its namespaces exactly. The shipped one-replica
install is put back afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cluster import deploy
from tests.harness import reports as fx
from tests.harness.polling import wait_for

SHARDS = deploy.MANIFESTS / "examples" / "shards"
DEPLOYMENTS = ("zen-watcher-shard-a", "zen-watcher-shard-b", "zen-watcher-webhooks")
TEAMS = {"team-a": "a", "team-b": "b", "team-c": "a", "team-d": "b"}  # namespace: its shard


@pytest.fixture(name="sharded")
def _sharded(installed: deploy.Installed) -> Iterator[deploy.Installed]:
    node = installed.node
    for team, shard in TEAMS.items():
        node.kubectl("create", "namespace", team)
        node.kubectl("label", "namespace", team, f"zen.kube-zen.io/shard={shard}")
    node.kubectl("delete", "deployment", deploy.DEPLOYMENT, "-n", deploy.NAMESPACE)
    try:
        node.kubectl("apply", "-k", str(SHARDS))
        for name in DEPLOYMENTS:
            node.kubectl(
                "rollout", "status", f"deployment/{name}", "-n", deploy.NAMESPACE, "--timeout=240s"
            )
        installed.wait_reachable()
        yield installed
    finally:
        for name in DEPLOYMENTS:
            node.kubectl("delete", "deployment", name, "-n", deploy.NAMESPACE, check=False)
        node.kubectl("apply", "-k", str(deploy.MANIFESTS))  # the Service selector, the Deployment
        installed.rollout()
        installed.wait_reachable()
        for team in TEAMS:
            node.kubectl("delete", "namespace", team, "--wait=false", check=False)


def creates_by_deployment(installed: deploy.Installed) -> dict[str, float]:
    """Observation creates answered OK, summed over each Deployment's Ready pods."""
    result = installed.node.kubectl(
        "get", "pods", "-n", deploy.NAMESPACE, "-l", deploy.SELECTOR, "-o", "json"
    )
    totals = dict.fromkeys(DEPLOYMENTS, 0.0)
    for pod in json.loads(result.stdout)["items"]:
        if pod["metadata"].get("deletionTimestamp") or not deploy.is_ready(pod):
            continue
        owner = next(name for name in DEPLOYMENTS if pod["metadata"]["name"].startswith(name))
        metrics = installed.metrics(pod["status"]["podIP"])
        for line in metrics.splitlines():
            if (
                line.startswith("zen_watcher_api_writes_total{")
                and 'operation="create"' in line
                and 'outcome="ok"' in line
            ):
                totals[owner] += float(line.rsplit(" ", 1)[1])
    return totals


def test_each_shard_writes_only_in_its_namespaces(sharded: deploy.Installed) -> None:
    kube = sharded.kube
    in_a = fx.placed(fx.load_fixture(fx.POLICY), "team-a")
    in_b = fx.placed(fx.load_fixture(fx.POLICY), "team-b")
    fx.apply(kube, in_a, in_b)
    for report in (in_a, in_b):
        open_ = dict.fromkeys(fx.finding_names(report), "Open")
        namespace = report["metadata"]["namespace"]
        wait_for(lambda ns=namespace, want=open_: fx.phases(kube, ns) == want, timeout=90)
    expected = {
        "zen-watcher-shard-a": float(len(fx.finding_names(in_a))),
        "zen-watcher-shard-b": float(len(fx.finding_names(in_b))),
        "zen-watcher-webhooks": 0.0,
    }
    assert expected == creates_by_deployment(sharded)

    alert = {
        "rule": "Terminal shell in container",
        "priority": "Critical",
        "output": "A shell was spawned in a container",
        "time": "2026-01-01T00:00:00Z",
        "output_fields": {"k8s.ns.name": "team-c", "k8s.pod.name": "web-1", "container.id": "c1"},
    }
    url = sharded.service_url() + "/falco/webhook"
    assert 200 == deploy.post(url, json.dumps(alert).encode(), sharded.webhook_token)[0]
    wait_for(lambda: fx.phases(kube, "team-c"), timeout=30)
    expected["zen-watcher-webhooks"] = 1.0
    assert expected == creates_by_deployment(sharded)
