"""End-to-end latency: a Falco alert's POST until its Observation shows up in a watch.

What a user of `kubectl get observations -w` waits for is the object appearing, so an alert
counts as *visible* at the watch's ADDED event for its Observation. The API server drops
`.status` on create, so ADDED carries no count yet; the first event carrying `status.count`
(the writer's status patch right after the create) is reported beside it as `with_status`.

Alerts are unique findings (one distinct pod name each, in the daemon's namespace), so each one
is a create plus a status patch by a writer worker: the latency is intake + queueing + those
two API calls + the watch's fan-out. They are sent open-loop at a fixed rate, a fraction of the
measured write capacity, and every latency is counted from the alert's *scheduled* send time,
so a sender or connection that falls behind cannot hide queueing. The sender and the watch run
in this process on one event loop in a thread pinned to the load CPU; the daemon has the other.

    python -m bench.points.latency --quick --write-capacity 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.load.common import (
    TOKEN,
    add_write_capacity_argument,
    percentiles,
    process_cpu_seconds,
    runqueue_seconds,
)
from bench.load.loadgen import request_bytes
from bench.load.openloop import FALCO_PATH, falco_body, on_load_cpu, send_open_loop
from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess
from zenwatcher.kube import config as kube_config
from zenwatcher.kube import errors, observations, watching
from zenwatcher.kube.client import KubeClient

FRACTIONS = (0.25, 0.50, 0.90)
TARGET_FRACTION = 0.50
P99_TARGET_MS = 100.0  # at TARGET_FRACTION of the write capacity
DRAIN_TIMEOUT = 30.0  # after the last answer, how long an accepted alert may take to show up
WARMUP_ALERTS = 50  # first creates open the daemon's API connections: not part of a point
NAMESPACE = "bench-latency"


@dataclass(slots=True)
class Batch:
    """The alerts of one point: how many are fully seen, and a nudge whenever that changes."""

    complete: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class Alert:
    """One sent alert; times are perf_counter seconds, 0.0 = not (yet) happened."""

    batch: Batch
    scheduled: float
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0
    added: float = 0.0
    with_status: float = 0.0

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class Watcher:
    """A watch of the Observations in one namespace, stamping the alerts it recognises."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.tracked: dict[str, Alert] = {}  # pod name -> alert
        self.events = 0

    async def start(self) -> asyncio.Task[None]:
        """Take the collection's resourceVersion now, so that nothing created afterwards is
        missed however late the stream connects, and follow it from there."""
        answer = await self.client.request(
            "GET", observations.collection_path(self.namespace), params={"limit": 1}
        )
        version = watching.resource_version_of(answer)
        return asyncio.create_task(self._follow(version))

    async def _follow(self, version: str) -> None:
        path = observations.collection_path(self.namespace)
        while True:
            stream = watching.watch_stream(
                self.client,
                path=path,
                resource_version=version,
                server_timeout=600,
                inactivity_timeout=120,
            )
            try:
                async with contextlib.aclosing(stream):
                    async for event in stream:
                        self._note(event, time.perf_counter())
                        version = event.resource_version or version
            except watching.StreamIdle:
                continue
            except errors.TransportError:
                await asyncio.sleep(0.2)

    def _note(self, event: watching.WatchEvent, now: float) -> None:
        self.events += 1
        if event.type not in ("ADDED", "MODIFIED"):
            return
        spec = event.object.get("spec") or {}
        pod = (spec.get("resource") or {}).get("name")
        alert = self.tracked.get(pod) if isinstance(pod, str) else None
        if alert is None:
            return
        if event.type == "ADDED" and not alert.added:
            alert.added = now
        if (event.object.get("status") or {}).get("count") and not alert.with_status:
            alert.with_status = now
            # A watch that resumed after the ADDED was sent still saw the object exist.
            alert.added = alert.added or now
            alert.batch.complete += 1
            alert.batch.changed.set()


async def send_and_track(
    watcher: Watcher, port: int, *, prefix: str, rate: float, duration: float
) -> tuple[list[Alert], float, float]:
    """Send unique alerts open-loop and wait until the accepted ones are visible (or the drain
    timeout passes): (alerts, seconds until the last answer, seconds until the last send)."""
    alerts: list[Alert] = []
    batch = Batch()
    total = int(rate * duration)
    requests = [
        request_bytes(FALCO_PATH, port, TOKEN, falco_body(watcher.namespace, f"{prefix}-{index}"))
        for index in range(total)
    ]
    started = time.perf_counter()
    for index in range(total):
        alert = Alert(batch=batch, scheduled=started + index / rate)
        alerts.append(alert)
        watcher.tracked[f"{prefix}-{index}"] = alert

    def on_answer(index: int, sent: float, answered: float, status: int) -> None:
        alerts[index].sent = sent
        alerts[index].answered = answered
        alerts[index].status = status

    elapsed = await send_open_loop(
        port=port,
        rate=rate,
        duration=duration,
        request=requests.__getitem__,
        on_answer=on_answer,
        started=started,
    )
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    wanted = sum(1 for a in alerts if a.accepted)
    while batch.complete < wanted and (remaining := deadline - time.perf_counter()) > 0:
        batch.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(batch.changed.wait(), remaining)
    return alerts, elapsed, total / rate


def summarise(
    alerts: list[Alert],
    *,
    fraction: float,
    rate: float,
    elapsed: float,
    daemon_cpu: float,
    daemon_wait: float,
) -> dict[str, Any]:
    accepted = [a for a in alerts if a.accepted]
    seen = [a for a in accepted if a.added]

    def rounded(samples: list[float]) -> dict[str, float]:
        return {key: round(value, 2) for key, value in percentiles(samples).items()}

    point: dict[str, Any] = {
        "fraction": fraction,
        "target_rate": round(rate, 1),
        "achieved_rate": round(sum(1 for a in alerts if a.answered) / elapsed, 1),
        "sent": len(alerts),
        "accepted": len(accepted),
        "non2xx": sum(1 for a in alerts if a.status and not a.accepted),
        "errors": sum(1 for a in alerts if not a.status),
        "seen": len(seen),
        "lost": len(accepted) - len(seen),
        **rounded([a.added - a.scheduled for a in seen]),
        "with_status": rounded([a.with_status - a.scheduled for a in accepted if a.with_status]),
        "http_answer": rounded([a.answered - a.scheduled for a in alerts if a.answered]),
        # How late the sender itself put requests on the wire: large = the load CPU was busy.
        "sender_late": rounded([a.sent - a.scheduled for a in alerts if a.sent]),
        "daemon_cpu_fraction": round(daemon_cpu, 3),
        "daemon_runqueue_wait_fraction": round(daemon_wait, 3),
    }
    if seen:
        # When the slowest 1 % were sent: bunched together means a stall somewhere (the API
        # server, etcd), spread out means steady queueing.
        first = min(a.scheduled for a in alerts)
        slowest = sorted(seen, key=lambda a: a.added - a.scheduled)[-max(1, len(seen) // 100) :]
        point["slowest_percent_sent_at_s"] = sorted(round(a.scheduled - first, 1) for a in slowest)
    if fraction == TARGET_FRACTION:
        point["target_p99_ms"] = P99_TARGET_MS
        point["met"] = point["p99_ms"] <= P99_TARGET_MS and point["lost"] == 0
    return point


def watching_failed(follower: asyncio.Task[None]) -> None:
    """Raise what ended the watch, if it ended: its alerts would otherwise all read as lost."""
    if follower.done():
        follower.result()
        raise RuntimeError("the Observation watch stopped")


async def measure(
    running: cluster.Cluster,
    target: DaemonProcess,
    *,
    write_capacity: float,
    duration: float,
    fractions: tuple[float, ...],
) -> list[dict[str, Any]]:
    assert target.process is not None
    connection = await kube_config.load_connection(str(running.kubeconfig("admin")))
    client = KubeClient(connection=connection, timeout=30)
    watcher = Watcher(client, NAMESPACE)
    follower = await watcher.start()
    tag = f"{int(time.time()) % 100000:05d}"  # reruns against one cluster stay unique
    try:
        warm, _, _ = await send_and_track(
            watcher, target.webhook_port, prefix=f"warm-{tag}", rate=WARMUP_ALERTS / 2, duration=2
        )
        if not all(a.added for a in warm):
            watching_failed(follower)
            raise RuntimeError("warm-up alerts never showed up in the watch")
        points = []
        for number, fraction in enumerate(fractions):
            rate = fraction * write_capacity
            cpu_before = process_cpu_seconds(target.process.pid)
            wait_before = runqueue_seconds(target.process.pid)
            alerts, elapsed, sending = await send_and_track(
                watcher,
                target.webhook_port,
                prefix=f"lat-{tag}-{number}",
                rate=rate,
                duration=duration,
            )
            # Per second of sending (and the drain after it, when the daemon had a backlog).
            window = time.perf_counter() - alerts[0].scheduled if alerts else max(elapsed, sending)
            daemon_cpu = (process_cpu_seconds(target.process.pid) - cpu_before) / window
            daemon_wait = (runqueue_seconds(target.process.pid) - wait_before) / window
            point = summarise(
                alerts,
                fraction=fraction,
                rate=rate,
                elapsed=elapsed,
                daemon_cpu=daemon_cpu,
                daemon_wait=daemon_wait,
            )
            watching_failed(follower)
            points.append(point)
            print(
                f"  latency at {fraction:.0%} ({rate:.0f}/s, achieved {point['achieved_rate']}/s):"
                f" visible p50 {point['p50_ms']:.1f} ms p95 {point['p95_ms']:.1f} ms"
                f" p99 {point['p99_ms']:.1f} ms max {point['max_ms']:.1f} ms;"
                f" with status p99 {point['with_status']['p99_ms']:.1f} ms;"
                f" sent {point['sent']} seen {point['seen']} lost {point['lost']}"
                f" non-2xx {point['non2xx'] + point['errors']};"
                f" daemon cpu {point['daemon_cpu_fraction']:.0%},"
                f" waiting for a cpu {point['daemon_runqueue_wait_fraction']:.0%};"
                f" sender late p99 {point['sender_late']['p99_ms']:.1f} ms",
                flush=True,
            )
        return points
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await client.close()


def run_latency(running: cluster.Cluster, *, quick: bool, write_capacity: float) -> dict[str, Any]:
    """Latency points at 25/50/90 % of `write_capacity` (unique Observations/s through
    zen-watcher, from bench.points.writes), one daemon for all of them, with the settings that
    capacity was measured with (no client-side API rate limit)."""
    from bench.load.common import daemon

    if write_capacity <= 0:
        raise ValueError(f"write_capacity must be positive, got {write_capacity!r}")
    duration = 10.0 if quick else 30.0
    with daemon(
        running,
        NAMESPACE,
        WEBHOOK_AUTH_TOKEN=TOKEN,
        WATCH_NAMESPACE=NAMESPACE,
    ) as target:
        points = on_load_cpu(
            lambda: measure(
                running,
                target,
                write_capacity=write_capacity,
                duration=duration,
                fractions=FRACTIONS,
            )
        )
    return {
        "write_capacity": write_capacity,
        "duration_s": duration,
        "visible_at": "watch ADDED event",
        "points": points,
    }


def main() -> int:
    from bench.load.common import control_plane

    parser = argparse.ArgumentParser(prog="python -m bench.points.latency", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s per point instead of 30 s")
    add_write_capacity_argument(parser)
    args = parser.parse_args()
    with control_plane() as running:
        result = run_latency(running, quick=args.quick, write_capacity=args.write_capacity)
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
