"""Write path at the shipped defaults: unique Observations per second through zen-watcher vs
the API server's raw create rate, and the envelope (200/s sustained, 300/s for 10 s).

Raw: the same objects (status included: a new Observation is one create; built by the daemon's
own mapping from the same alerts) created straight through our HTTP client at the writer's
concurrency. Through zen-watcher: unique Falco findings
posted in batches to one running daemon, timed until every one is counted as created. The two are measured in
alternating rounds and compared by their medians: every run leaves its objects in etcd and the
API server's rate drifts, so one sample of each, always in the same order, would favour
whichever ran first: the order alternates from round to round. The rounds start after the
daemon's leader has made its first GC sweep (a list of every Observation, then none for an hour),
and the end of a round is polled from /metrics a handful of times, not every 50 ms, since each
scrape takes the daemon's event loop a few milliseconds the raw client does not spend.

Envelope: distinct Falco alerts posted at a fixed rate (in 50 ms slices) to a daemon at the
shipped defaults (API_QPS, QUEUE_SIZE, WRITER_WORKERS: nothing overridden), then timed until every
accepted alert is an Observation.
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

from bench.load.common import DAEMON_CPU, TOKEN, daemon, wait_first_gc_sweep, wait_for_count
from bench.load.loadgen import falco_alert
from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess
from zenwatcher.kube import config as kube_config
from zenwatcher.kube import errors, observations
from zenwatcher.kube.client import KubeClient
from zenwatcher.mapping.falco import map_falco_alert
from zenwatcher.observation import to_observation
from zenwatcher.settings import Settings

CONCURRENCY = 8  # WRITER_WORKERS default
ROUNDS = 6  # raw create / zen-watcher rounds, order alternating: balanced over 6 (1 in a quick run)
SLICE = 0.05  # the envelope's sender posts one batch every 50 ms
TTL = Settings().ttl_seconds  # the shipped default, as the daemon writes it
STEADY_AFTER_READY = 5.0  # seconds a new daemon is left to finish its leader's start-up work


def falco_bodies(namespace: str, tag: str, count: int) -> list[dict[str, Any]]:
    """The Observations zen-watcher writes for the alerts `through_watcher` posts, built by its
    own mapping and body (the shipped TTL), so raw and through-watcher create equal objects:
    same fields, same size, for the API server to decode, validate, track and store."""
    now = datetime.now(UTC)
    alerts = orjson.loads(_alerts(namespace, tag, range(count)))
    return [
        to_observation(map_falco_alert(alert), namespace=namespace, now=now, ttl_seconds=TTL)
        for alert in alerts
    ]


async def raw_rate(running: cluster.Cluster, bodies: list[dict[str, Any]]) -> float:
    """Objects per second created straight through our client at the writer's concurrency;
    the bodies' names must be new to the store."""
    connection = await kube_config.load_connection(str(running.kubeconfig("zen-watcher")))
    client = KubeClient(connection=connection, timeout=30)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker() -> None:
        while not queue.empty():
            await observations.create_observation(client, queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    await client.close()
    return len(bodies) / elapsed


def through_watcher(target: DaemonProcess, namespace: str, count: int, *, tag: str) -> float:
    """Unique findings per second through a running daemon at the shipped defaults; `tag` keeps
    each round's names apart. Batches of 500 (so 6 at a time fit the default QUEUE_SIZE)."""
    created_before = target.metric_sum("zen_watcher_events_total", source="falco", bucket="created")
    batches = [
        _alerts(namespace, tag, range(start, min(count, start + 500)))
        for start in range(0, count, 500)
    ]
    started = time.perf_counter()
    for body in batches:
        while True:
            status, _, answer = target.post("/falco/webhook", body, token=TOKEN)
            if status != 503:  # the queue is full: retry as a client told Retry-After does
                break
            time.sleep(0.05)
        assert status == 200, answer
    done = wait_for_count(
        target,
        "zen_watcher_events_total",
        created_before + count,
        since=started,
        counted_before=created_before,
        source="falco",
        bucket="created",
    )
    return count / (done - started)


def _alerts(namespace: str, tag: str, indices: range) -> bytes:
    """A JSON array of distinct Falco alerts (one pod each) in `namespace`."""
    return orjson.dumps(
        [
            orjson.loads(falco_alert(i))
            | {
                "output_fields": {
                    "k8s.ns.name": namespace,
                    "k8s.pod.name": f"w{tag}-{i}",
                    "container.id": "c1",
                }
            }
            for i in indices
        ]
    )


def envelope(
    running: cluster.Cluster, namespace: str, *, rate: int, seconds: float, tag: str
) -> dict[str, Any]:
    """Post `rate` distinct alerts per second for `seconds` to a daemon at the shipped
    defaults; how many were accepted, and how long until each accepted one was written."""
    per_slice = max(1, round(rate * SLICE))
    slices = round(seconds / SLICE)
    accepted = refused = 0
    with daemon(running, namespace, WEBHOOK_AUTH_TOKEN=TOKEN) as target:
        started = time.perf_counter()
        for index in range(slices):
            due = started + index * SLICE
            time.sleep(max(0.0, due - time.perf_counter()))
            indices = range(index * per_slice, (index + 1) * per_slice)
            status, _, _ = target.post(
                "/falco/webhook", _alerts(namespace, tag, indices), token=TOKEN
            )
            if status == 200:
                accepted += len(indices)
            else:
                refused += len(indices)
        sent_for = time.perf_counter() - started
        queued_at_end = target.metric_sum("zen_watcher_queue_depth")
        created_at_end = target.metric_sum(
            "zen_watcher_events_total", source="falco", bucket="created"
        )
        deadline = time.perf_counter() + 120
        created = created_at_end
        while created < accepted and time.perf_counter() < deadline:
            time.sleep(0.05)
            created = target.metric_sum(
                "zen_watcher_events_total", source="falco", bucket="created"
            )
        written_in = time.perf_counter() - started
    return {
        "offered_per_second": rate,
        "seconds": seconds,
        "accepted": accepted,
        "refused": refused,
        "created": int(created),
        "created_while_sending": int(created_at_end),
        "queue_depth_when_sending_ended": int(queued_at_end),
        "sent_in_seconds": round(sent_for, 2),
        "all_written_in_seconds": round(written_in, 2),
        "observations_per_second": round(created / written_in, 1),
    }


async def delete_all(running: cluster.Cluster, namespaces: tuple[str, ...]) -> None:
    """Delete every Observation the point made (deletecollection per namespace), so the points
    that follow run against a store the size it was before. As admin: zen-watcher's role has no
    deletecollection. Over tens of thousands of objects the call can be cut short or time out
    (504), and what it had not deleted by then may stay: it is sent again until the collection
    is empty."""
    connection = await kube_config.load_connection(str(running.kubeconfig("admin")))
    client = KubeClient(connection=connection, timeout=300)
    try:
        for namespace in namespaces:
            path = observations.collection_path(namespace)
            deadline = time.monotonic() + 900
            while True:
                try:
                    await client.request("DELETE", path)
                except errors.TransportError:
                    pass
                except errors.ApiError as error:
                    if error.status != 504:
                        raise
                if await _emptied(client, path, within=60.0):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Observations in {namespace} not deleted in 15 minutes")
    finally:
        await client.close()


async def _emptied(client: KubeClient, path: str, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = await client.request("GET", path, params={"limit": "1"})
        if not left.get("items"):
            return True
        await asyncio.sleep(1.0)
    return False


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
    namespaces = ("bench-raw", "bench-writes", "bench-sustained", "bench-burst")
    for name in namespaces:
        running.kubectl("create", "namespace", name, check=False)
    raw_rounds: list[float] = []
    watcher_rounds: list[float] = []
    # One daemon for every round, as users run it: a fresh one would spend its first seconds
    # on the leader's start-up lists (GC, findings gauge) inside the timed window.
    with daemon(running, "bench-writes", WEBHOOK_AUTH_TOKEN=TOKEN) as target:
        time.sleep(STEADY_AFTER_READY)
        wait_first_gc_sweep(target)
        for index in range(1 if quick else ROUNDS):
            # Every round adds objects and slows the store: the order alternates (raw first,
            # then zen-watcher first, ...) so neither always meets the larger store.
            def raw_round(index: int = index) -> None:
                with on_daemon_cpu():
                    raw_rounds.append(
                        asyncio.run(
                            raw_rate(running, falco_bodies("bench-raw", f"create{index}", count))
                        )
                    )

            def watcher_round(index: int = index) -> None:
                watcher_rounds.append(
                    through_watcher(target, "bench-writes", count, tag=str(index))
                )

            for one_round in (raw_round, watcher_round)[:: 1 if index % 2 == 0 else -1]:
                one_round()
            print(
                f"  writes round {index}: raw {raw_rounds[-1]:.1f}/s, "
                f"zen-watcher {watcher_rounds[-1]:.1f}/s",
                flush=True,
            )
    # The same client free to use both cores, for reference (not the ratio's denominator).
    raw_unpinned = asyncio.run(raw_rate(running, falco_bodies("bench-raw", "unpinned", count)))
    sustained = envelope(running, "bench-sustained", rate=200, seconds=10 if quick else 20, tag="s")
    print(f"  writes sustained: {sustained}", flush=True)
    burst = envelope(running, "bench-burst", rate=300, seconds=10, tag="b")
    raw = statistics.median(raw_rounds)
    watcher = statistics.median(watcher_rounds)
    result = {
        "settings": "shipped defaults (API_QPS 0: no client-side limit; QUEUE_SIZE, WRITER_WORKERS)",
        "objects": count,
        "concurrency": CONCURRENCY,
        "raw_client_cpu": DAEMON_CPU,
        "rounds": len(watcher_rounds),
        "object_bytes": len(orjson.dumps(falco_bodies("bench-raw", "size", 1)[0])),
        "raw_create_per_second": round(raw, 1),
        "raw_create_rounds": [round(rate, 1) for rate in raw_rounds],
        "raw_create_unpinned_per_second": round(raw_unpinned, 1),
        "zen_watcher_per_second": round(watcher, 1),
        "zen_watcher_rounds": [round(rate, 1) for rate in watcher_rounds],
        "ratio_vs_raw_create": round(watcher / raw, 3),
        "sustained_200": sustained,
        "burst_300": burst,
    }
    print(f"  writes: {result}", flush=True)
    asyncio.run(delete_all(running, namespaces))
    return result
