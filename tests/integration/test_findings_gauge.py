"""The leader's gauges of the findings that exist, on the real API server, as the restricted
`zen-watcher` user: derived from a metadata-only watch of the Observations, they count what
another process wrote, follow resolves, reopens and deletes, are empty when the term ends, and
are right again in a new term (a restart or a failover); in a pair of daemons only the leader
exports them. Under a namespace selector they count the namespaces it selects (and our own) and
follow its labels."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime

import orjson
import pytest
from prometheus_client import CollectorRegistry

from tests.harness import namespaces as ns
from tests.harness.controlplane import cluster
from tests.harness.daemons import StartDaemon
from tests.harness.findings import falco_finding, report_finding
from tests.harness.payloads import unique_alert
from tests.harness.polling import wait_for
from tests.harness.writers import make_writer
from zenwatcher.kube import observations, watching
from zenwatcher.kube.client import KubeClient
from zenwatcher.leader.findings import METADATA_LIST, METADATA_WATCH, findings_gauge
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.jobs import CreateJob, OpenJob, ResolveJob
from zenwatcher.scope import NamespaceScope

pytestmark = pytest.mark.apiserver
SHARD = "zen.kube-zen.io/shard"

Counts = dict[tuple[str, str, str], float]  # (source, severity, phase) -> value


def gauge(metrics: Metrics, namespace: str) -> Counts:
    """The nonzero values of zen_watcher_findings for `namespace`."""
    counts: Counts = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            labels = sample.labels
            ours = sample.name == "zen_watcher_findings" and labels["namespace"] == namespace
            if ours and sample.value:
                counts[(labels["source"], labels["severity"], labels["phase"])] = sample.value
    return counts


def by_namespace(metrics: Metrics) -> dict[str, float]:
    """zen_watcher_findings summed by namespace, over every series it exports (zeros too)."""
    totals: dict[str, float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "zen_watcher_findings":
                name = sample.labels["namespace"]
                totals[name] = totals.get(name, 0.0) + sample.value
    return totals


def exported(metrics: Metrics) -> int:
    return sum(
        1
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "zen_watcher_findings"
    )


async def until(predicate: Callable[[], bool], *, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def term(client: KubeClient, namespace: str, metrics: Metrics) -> AsyncIterator[None]:
    """One leadership term's gauge task, cancelled at the end as a lost Lease cancels it."""
    task = asyncio.create_task(
        findings_gauge(client=client, namespaces=(namespace,), metrics=metrics)
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_gauges_follow_the_observations_written_by_another_process(
    watcher_client: KubeClient, admin_client: KubeClient, namespace: str
) -> None:
    # Another replica's writer (the admin's connection), before this "leader" starts.
    other = make_writer(admin_client, Metrics(CollectorRegistry()), default_namespace=namespace)
    now = datetime.now(UTC)
    for index in range(3):
        found = falco_finding(namespace, index)
        await other.write(CreateJob(finding=found, namespace=namespace, seen_at=now))
    open_one = report_finding(namespace, policy="p-open")
    resolved_one = report_finding(namespace, policy="p-resolved")
    for found in (open_one, resolved_one):
        await other.write(OpenJob(finding=found, namespace=namespace, seen_at=now))
    resolve = ResolveJob(
        name=resolved_one.name, namespace=namespace, source="kyverno", resolved_at=now
    )
    await other.write(resolve)

    metrics = Metrics(CollectorRegistry())
    expected = {
        ("falco", "critical", "open"): 3.0,
        ("kyverno", "high", "open"): 1.0,
        ("kyverno", "high", "resolved"): 1.0,
    }
    async with term(watcher_client, namespace, metrics):
        await until(lambda: gauge(metrics, namespace) == expected)
        # Changes while it watches: a resolve, a delete, two new findings; then a reopen.
        await other.write(
            ResolveJob(name=open_one.name, namespace=namespace, source="kyverno", resolved_at=now)
        )
        await observations.delete_observation(
            admin_client, namespace, falco_finding(namespace, 0).name
        )
        for index in (7, 8):
            found = falco_finding(namespace, index)
            await other.write(CreateJob(finding=found, namespace=namespace, seen_at=now))
        await until(
            lambda: (
                gauge(metrics, namespace)
                == {("falco", "critical", "open"): 4.0, ("kyverno", "high", "resolved"): 2.0}
            )
        )
        await other.write(OpenJob(finding=resolved_one, namespace=namespace, seen_at=now))
        expected_now = {
            ("falco", "critical", "open"): 4.0,
            ("kyverno", "high", "open"): 1.0,
            ("kyverno", "high", "resolved"): 1.0,
        }
        await until(lambda: gauge(metrics, namespace) == expected_now)
    assert 0 == exported(metrics)  # the term ended: a follower exports nothing

    # A new term on a fresh process (another registry): right from its first list.
    fresh = Metrics(CollectorRegistry())
    async with term(watcher_client, namespace, fresh):
        await until(lambda: gauge(fresh, namespace) == expected_now)


@pytest.mark.daemon
def test_only_the_leader_exports_and_a_failover_keeps_the_counts(
    start_daemon: StartDaemon, namespace: str
) -> None:
    """Two daemons; alerts posted to both. The sum over pods is the number of Observations,
    and after the leader stops, the other pod takes over with the same counts."""
    env = {
        "WATCH_NAMESPACE": namespace,
        "WATCH_REPORTS": "false",
        "LEADER_LEASE_DURATION": "3",
        "LEADER_RENEW_DEADLINE": "2",
        "LEADER_RETRY_PERIOD": "0.5",
        "SHUTDOWN_GRACE_SECONDS": "2",
    }
    daemons = [start_daemon(POD_NAME=f"pod-{index}", **env) for index in range(2)]
    for index in range(6):
        daemon = daemons[index % 2]
        assert 200 == daemon.post("/falco/webhook", orjson.dumps(unique_alert(index, namespace)))[0]

    def open_falco(daemon_index: int) -> float:
        return daemons[daemon_index].metric_sum(
            "zen_watcher_findings", source="falco", namespace=namespace, phase="open"
        )

    wait_for(lambda: open_falco(0) + open_falco(1) == 6, timeout=30)
    leader = 0 if daemons[0].metric_sum("zen_watcher_leader") else 1
    assert 0 == daemons[1 - leader].metric_sum("zen_watcher_findings")
    daemons[leader].stop()
    wait_for(lambda: open_falco(1 - leader) == 6, timeout=30)


async def test_lists_and_watches_carry_metadata_only(
    watcher_client: KubeClient, admin_client: KubeClient, namespace: str
) -> None:
    """The gauge's Accept headers get PartialObjectMetadata from the API server: labels, no
    spec or status, in the list and in watch events."""
    writer = make_writer(admin_client, Metrics(CollectorRegistry()), default_namespace=namespace)
    now = datetime.now(UTC)
    await writer.write(
        CreateJob(finding=falco_finding(namespace, 1), namespace=namespace, seen_at=now)
    )
    path = observations.collection_path(namespace)
    pages = [
        page async for page in watching.list_pages(watcher_client, path=path, accept=METADATA_LIST)
    ]
    (item,) = [item for page in pages for item in page.items]
    assert ("PartialObjectMetadata", "meta.k8s.io/v1") == (item["kind"], item["apiVersion"])
    assert {"metadata"} == set(item) - {"kind", "apiVersion"}
    assert "open" == item["metadata"]["labels"]["zen.kube-zen.io/phase"]

    stream = watching.watch_stream(
        watcher_client,
        path=path,
        resource_version=pages[-1].resource_version,
        server_timeout=5,
        inactivity_timeout=10,
        accept=METADATA_WATCH,
    )
    async with contextlib.aclosing(stream):
        await writer.write(
            CreateJob(finding=falco_finding(namespace, 2), namespace=namespace, seen_at=now)
        )
        event = await anext(aiter(stream))
    assert "ADDED" == event.type
    assert "PartialObjectMetadata" == event.object["kind"]
    assert "spec" not in event.object


@pytest.fixture(name="pair")
def _pair(control_plane: cluster.Cluster) -> Iterator[tuple[str, str]]:
    """Two namespaces of this test's own, unlabelled; removed afterwards."""
    names = (f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}")
    for name in names:
        ns.create(control_plane, name)
    yield names
    for name in names:
        ns.remove(control_plane, name)


async def test_under_a_selector_counts_the_selected_namespaces_and_follows_labels(
    watcher_client: KubeClient,
    admin_client: KubeClient,
    control_plane: cluster.Cluster,
    namespace: str,
    pair: tuple[str, str],
) -> None:
    """Observations in a selected namespace, an unselected one and our own (POD_NAMESPACE,
    selected too): the gauge counts the selected one's and our own's. The labels are then
    swapped and ours removed: the namespace that left has no series any more, the one that
    entered is counted, ours stays (findings without a namespace are written there). The
    scope is the daemon's, with its real Namespace informer."""
    selected, unselected = pair
    value = f"t{uuid.uuid4().hex[:10]}"
    for name in (selected, namespace):
        ns.label(control_plane, name, SHARD, value)
    writer = make_writer(admin_client, Metrics(CollectorRegistry()), default_namespace=namespace)
    now = datetime.now(UTC)
    for target, count in ((selected, 2), (unselected, 3), (namespace, 1)):
        for index in range(count):
            found = falco_finding(target, index)
            await writer.write(CreateJob(finding=found, namespace=target, seen_at=now))

    metrics = Metrics(CollectorRegistry())
    scope = NamespaceScope(pod_namespace=namespace, selector=f"{SHARD}={value}")
    with ns.namespace_reader(control_plane):
        async with contextlib.AsyncExitStack() as stack:
            for work in (
                scope.run(client=watcher_client, metrics=metrics),
                findings_gauge(client=watcher_client, namespaces=(), metrics=metrics, scope=scope),
            ):
                task = asyncio.create_task(work)
                stack.push_async_callback(_cancelled, task)
            await until(lambda: by_namespace(metrics) == {selected: 2.0, namespace: 1.0})

            ns.label(control_plane, unselected, SHARD, value)
            for name in (selected, namespace):
                ns.label(control_plane, name, SHARD, None)
            await until(lambda: by_namespace(metrics) == {unselected: 3.0, namespace: 1.0})


async def _cancelled(task: asyncio.Task[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
