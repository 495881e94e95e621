"""Capacity of a server under load: open-loop points from the pinned load generator, stepped up
until one fails the bar (p99 < 50 ms and < 0.1 % non-2xx). Shared by the intake, baseline, peer
and profiling points, so every server is held to the same rule.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Protocol

import orjson

from bench.load.common import LOAD_CPU, TOKEN, process_cpu_seconds

P99_LIMIT_MS = 50.0
NON2XX_LIMIT = 0.001


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
        "bench.load.loadgen",
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
