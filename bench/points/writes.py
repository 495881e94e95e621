"""Write path: unique Observations per second through zen-watcher vs the API server's raw rate.

Raw: the same objects created straight through our HTTP client at the writer's concurrency,
once create-only and once create + status patch (what a new Observation costs zen-watcher,
since the API server drops `.status` on create). Through zen-watcher: unique Falco findings
posted in batches, timed until every one is counted as created.

The create + status rate, the ratio's denominator, and zen-watcher's rate are measured in
alternating rounds and compared by their medians: every run leaves its objects in etcd and the
API server's rate drifts, so one sample of each, always in the same order, would favour
whichever ran first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from bench.load.common import DAEMON_CPU, TOKEN, daemon
from bench.load.loadgen import falco_alert
from tests.harness.controlplane import cluster
from zenwatcher.finding import Category, Finding, ResourceRef, Severity
from zenwatcher.kube import config as kube_config
from zenwatcher.kube import observations
from zenwatcher.kube.client import KubeClient
from zenwatcher.observation import to_observation

CONCURRENCY = 8  # WRITER_WORKERS default
ROUNDS = 3  # alternating raw create + status / zen-watcher rounds (1 in a quick run)


def raw_findings(count: int, namespace: str, tag: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    bodies = []
    for index in range(count):
        finding = Finding(
            source="falco",
            category=Category.SECURITY,
            severity=Severity.MEDIUM,
            event_type="runtime_detection",
            identity=(tag, str(index)),
            resource=ResourceRef(kind="Pod", name=f"pod-{index}", namespace=namespace),
            title="Terminal shell in container",
            message=f"shell {index}",
            details={"rule": "Terminal shell in container"},
        )
        bodies.append(to_observation(finding, namespace=namespace, now=now, ttl_seconds=3600))
    return bodies


async def raw_rate(
    running: cluster.Cluster, namespace: str, count: int, *, with_status: bool, tag: str
) -> float:
    """Objects per second created (and status-patched) straight through our client; `tag`
    keeps each run's names apart."""
    connection = await kube_config.load_connection(str(running.kubeconfig("zen-watcher")))
    client = KubeClient(connection=connection, timeout=30)
    bodies = raw_findings(count, namespace, tag)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            created = await observations.create_observation(client, body)
            if with_status:
                await observations.patch_status(
                    client,
                    namespace,
                    body["metadata"]["name"],
                    status=body["status"],
                    resource_version=created["metadata"]["resourceVersion"],
                )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    await client.close()
    return count / elapsed


def through_watcher(running: cluster.Cluster, namespace: str, count: int, *, tag: str) -> float:
    """Unique findings per second through a fresh daemon; `tag` keeps each round's names apart."""
    with daemon(
        running, namespace, WEBHOOK_AUTH_TOKEN=TOKEN, API_QPS="0", QUEUE_SIZE=str(count + 1000)
    ) as target:
        batches = [
            orjson.dumps(
                [
                    orjson.loads(falco_alert(i))
                    | {
                        "output_fields": {
                            "k8s.ns.name": namespace,
                            "k8s.pod.name": f"w{tag}-{i}",
                            "container.id": "c1",
                        }
                    }
                    for i in range(start, min(count, start + 500))
                ]
            )
            for start in range(0, count, 500)
        ]
        started = time.perf_counter()
        for body in batches:
            status, _, answer = target.post("/falco/webhook", body, token=TOKEN)
            assert status == 200, answer
        while (
            target.metric_sum("zen_watcher_events_total", source="falco", bucket="created") < count
        ):
            time.sleep(0.05)
        return count / (time.perf_counter() - started)


async def delete_all(running: cluster.Cluster, namespaces: tuple[str, ...]) -> None:
    """Delete every Observation the point made (one deletecollection per namespace), so the
    points that follow run against a store the size it was before. As admin: zen-watcher's
    role has no deletecollection."""
    connection = await kube_config.load_connection(str(running.kubeconfig("admin")))
    client = KubeClient(connection=connection, timeout=300)
    try:
        for namespace in namespaces:
            await client.request("DELETE", observations.collection_path(namespace))
    finally:
        await client.close()


@contextlib.contextmanager
def on_daemon_cpu() -> Iterator[None]:
    """Run this process on the daemon's core meanwhile: the raw client then competes with the
    API server for CPU exactly as the pinned daemon does, so the ratio compares like with like."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(DAEMON_CPU)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_writes(running: cluster.Cluster, *, quick: bool) -> dict[str, Any]:
    count = 1000 if quick else 3000
    namespaces = ("bench-raw", "bench-writes")
    for name in namespaces:
        running.kubectl("create", "namespace", name, check=False)
    with on_daemon_cpu():
        raw_create = asyncio.run(
            raw_rate(running, "bench-raw", count, with_status=False, tag="create")
        )
    raw_rounds: list[float] = []
    watcher_rounds: list[float] = []
    for index in range(1 if quick else ROUNDS):
        with on_daemon_cpu():
            raw_rounds.append(
                asyncio.run(
                    raw_rate(running, "bench-raw", count, with_status=True, tag=f"pair{index}")
                )
            )
        watcher_rounds.append(through_watcher(running, "bench-writes", count, tag=str(index)))
    # The same client free to use both cores, for reference (not the ratio's denominator).
    raw_full_unpinned = asyncio.run(
        raw_rate(running, "bench-raw", count, with_status=True, tag="unpinned")
    )
    asyncio.run(delete_all(running, namespaces))
    raw_full = statistics.median(raw_rounds)
    watcher = statistics.median(watcher_rounds)
    result = {
        "objects": count,
        "concurrency": CONCURRENCY,
        "raw_client_cpu": DAEMON_CPU,
        "rounds": len(watcher_rounds),
        "raw_create_per_second": round(raw_create, 1),
        "raw_create_and_status_per_second": round(raw_full, 1),
        "raw_create_and_status_rounds": [round(rate, 1) for rate in raw_rounds],
        "raw_create_and_status_unpinned_per_second": round(raw_full_unpinned, 1),
        "zen_watcher_per_second": round(watcher, 1),
        "zen_watcher_rounds": [round(rate, 1) for rate in watcher_rounds],
        "ratio_vs_raw_create": round(watcher / raw_create, 3),
        "ratio_vs_create_and_status": round(watcher / raw_full, 3),
    }
    print(f"  writes: {result}", flush=True)
    return result
