"""Webhook intake capacity: the highest open-loop rate with p99 < 50 ms and < 0.1 % non-2xx.

The daemon runs pinned to one core, the load generator on the other. Rates step up until a point
fails; every point is kept with its latencies and the generator's own CPU use.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Protocol

import orjson

from bench.common import LOAD_CPU, process_cpu_seconds
from tests.controlplane import cluster

P99_LIMIT_MS = 50.0
NON2XX_LIMIT = 0.001
TOKEN = "bench-token"


class LoadTarget(Protocol):
    """A server under load: the port to post to, and its process for the CPU it used."""

    @property
    def webhook_port(self) -> int: ...

    @property
    def process(self) -> subprocess.Popen[bytes] | None: ...


def load_point(
    daemon: LoadTarget, *, kind: str, rate: float, duration: float, path: str
) -> dict[str, Any]:
    """One open-loop run from a separate, pinned process."""
    command = [
        "taskset",
        "-c",
        LOAD_CPU,
        sys.executable,
        "-m",
        "bench.loadgen",
        "--port",
        str(daemon.webhook_port),
        "--path",
        path,
        "--token",
        TOKEN,
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--kind",
        kind,
    ]
    pid = daemon.process.pid if daemon.process else None
    cpu_before = process_cpu_seconds(pid)
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=duration * 10 + 60
    )
    if result.returncode != 0:
        raise RuntimeError(f"load generator failed: {result.stderr[-2000:]}")
    point: dict[str, Any] = orjson.loads(result.stdout.strip().splitlines()[-1])
    # The server's own CPU per event: what the pipeline costs, whatever the rate.
    events = point["events_per_second"] * point["elapsed_seconds"]
    point["server_cpu_us_per_event"] = round(
        (process_cpu_seconds(pid) - cpu_before) / max(1.0, events) * 1e6, 1
    )
    total = point["ok"] + point["non2xx"] + point["errors"]
    point["non2xx_fraction"] = round((point["non2xx"] + point["errors"]) / max(1, total), 5)
    point["passed"] = point["p99_ms"] < P99_LIMIT_MS and point["non2xx_fraction"] < NON2XX_LIMIT
    # A generator that used ~all of its core cannot tell us the server's limit.
    point["loadgen_saturated"] = point["loadgen_cpu_seconds"] > 0.9 * point["elapsed_seconds"]
    return point


def capacity(
    daemon: LoadTarget, *, kind: str, rates: list[float], duration: float, path: str
) -> dict[str, Any]:
    """Step through `rates` until a point fails; the best passing rate and every point."""
    points = []
    for rate in rates:
        point = load_point(daemon, kind=kind, rate=rate, duration=duration, path=path)
        points.append(point)
        print(
            f"  {kind:13} {rate:>8.0f}/s requests: p50 {point['p50_ms']:.1f} ms p99 {point['p99_ms']:.1f} ms "
            f"max {point['max_ms']:.1f} ms non-2xx {point['non2xx_fraction']:.4f} "
            f"events/s {point['events_per_second']:.0f} "
            f"server cpu {point['server_cpu_us_per_event']:.0f} us/event loadgen cpu {point['loadgen_cpu_seconds']:.1f}s"
            f"{' (saturated)' if point['loadgen_saturated'] else ''}",
            flush=True,
        )
        if not point["passed"]:
            break
    passing = [p for p in points if p["passed"]]
    best = max(passing, key=lambda p: p["events_per_second"]) if passing else None
    return {"kind": kind, "best": best, "points": points}


def run_intake(running: cluster.Cluster, *, quick: bool) -> dict[str, Any]:
    from bench.common import daemon

    duration = 5.0 if quick else 10.0
    results: dict[str, Any] = {}
    with daemon(running, "bench-intake", WEBHOOK_AUTH_TOKEN=TOKEN, QUEUE_SIZE="100000") as target:
        results["falco_repeats"] = capacity(
            target,
            kind="falco-repeat",
            rates=[1000, 2000, 3000, 3500, 4000, 4500, 5000, 6000, 8000, 10000, 12000, 15000],
            duration=duration,
            path="/falco/webhook",
        )
        results["falco_repeats_at_5000"] = load_point(
            target, kind="falco-repeat", rate=5000, duration=duration, path="/falco/webhook"
        )
        results["audit_mix"] = capacity(
            target,
            kind="audit-mix",
            rates=[10, 20, 30, 40, 50, 60, 65, 70, 75, 100, 150, 250],
            duration=duration,
            path="/audit/webhook",
        )
        # Throughput beside the p99 bar: offered more than it can take, what it did.
        results["audit_mix_saturated"] = load_point(
            target, kind="audit-mix", rate=100, duration=duration, path="/audit/webhook"
        )
        # A 400-event list of findings takes tens of ms to process, so the p99 bar says little
        # about throughput: this point offers more than it can take and reports what it did.
        results["audit_saturated"] = load_point(
            target, kind="audit", rate=40, duration=duration, path="/audit/webhook"
        )
        results["audit_batches"] = capacity(
            target,
            kind="audit",
            rates=[5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 250],
            duration=duration,
            path="/audit/webhook",
        )
    with daemon(running, "bench-unique", WEBHOOK_AUTH_TOKEN=TOKEN, API_QPS="0") as target:
        results["falco_unique"] = capacity(
            target,
            kind="falco-unique",
            rates=[200, 500, 1000, 2000, 4000],
            duration=duration,
            path="/falco/webhook",
        )
    return results
