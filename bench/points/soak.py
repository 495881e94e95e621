"""Soak: the daemon's RSS idle, then through 10 minutes at half of its capacity, and its slope.

Load (open-loop, from this process on the load CPU):
- unique Falco findings (a new pod name each, in the daemon's namespace): every one is a create
  and a status patch, a new dedup entry and a new object in the API server; this is the stream
  that could leak (cache entries, per-object state, connection buffers);
- with `falco_repeat_capacity` given, also repeats of 50 hot findings: absorbed by the dedup
  cache and flushed once a window each, the bulk of a real Falco's traffic.
"Half of capacity" is a share of the daemon's time: alone, unique findings run at 50 % of the
write capacity; in the mix each stream runs at 25 % of its own capacity, so the two shares
add up to 50 %.

RSS (/proc/<pid>/status VmRSS) is sampled every second. The slope that says "leak or not" is a
least-squares fit over the second half of the load only: the first half includes the dedup
cache filling up to one window's worth of keys (DEDUP_WINDOW_SECONDS, 60 s by default) and
allocator warm-up, which is growth that stops. The slope over the whole run is reported too.
In quick mode (60 s) the second half is still inside the first dedup window, so its slope is
cache fill, not a leak verdict. Where RSS levels off depends on the load: the cache holds about
unique rate x window keys (at most DEDUP_MAX_SIZE), each with its mapped finding.

    python -m bench.points.soak --quick --write-capacity 100 [--falco-repeat-capacity 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson

from bench.load.common import (
    TOKEN,
    add_write_capacity_argument,
    process_cpu_seconds,
    rss,
    runqueue_seconds,
)
from bench.load.loadgen import request_bytes
from bench.load.openloop import FALCO_PATH, falco_body, on_load_cpu, send_open_loop
from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess

NAMESPACE = "bench-soak"
LOAD_SHARE = 0.5
HOT_FINDINGS = 50
IDLE_SECONDS = 10.0
DRAIN_TIMEOUT = 120.0
MIB = 1024 * 1024
TRACE_EVERY = 10  # seconds between the RSS samples kept in the result
REPEAT_CONNECTIONS = 64  # as bench.load.loadgen: thousands of requests/s need many in flight


@dataclass(slots=True)
class Counts:
    """Answers of one stream."""

    ok: int = 0
    non2xx: int = 0
    errors: int = 0

    def add(self, _index: int, _sent: float, _answered: float, status: int) -> None:
        if 200 <= status < 300:
            self.ok += 1
        elif status:
            self.non2xx += 1
        else:
            self.errors += 1


def slope_mib_per_minute(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS (MiB) over time (minutes); 0.0 with fewer than 2 samples."""
    if len(samples) < 2:
        return 0.0
    minutes = [t / 60 for t, _ in samples]
    mib = [value / MIB for _, value in samples]
    return statistics.linear_regression(minutes, mib).slope


async def sample_rss(pid: int, samples: list[tuple[float, int]], started: float) -> None:
    """(seconds since `started`, RSS bytes) once a second, on the second, until cancelled."""
    tick = 0
    while True:
        samples.append((time.perf_counter() - started, rss(pid)))
        tick += 1
        await asyncio.sleep(max(0.0, started + tick - time.perf_counter()))


async def soak(
    target: DaemonProcess, *, duration: float, unique_rate: float, repeat_rate: float
) -> dict[str, Any]:
    assert target.process is not None
    pid = target.process.pid
    port = target.webhook_port

    idle: list[tuple[float, int]] = []
    sampler = asyncio.create_task(sample_rss(pid, idle, time.perf_counter()))
    await asyncio.sleep(IDLE_SECONDS)
    await stop(sampler)

    tag = f"{int(time.time()) % 100000:05d}"  # reruns against one cluster stay unique
    unique, repeats = Counts(), Counts()
    hot = [
        request_bytes(FALCO_PATH, port, TOKEN, falco_body(NAMESPACE, f"hot-{tag}-{k}"))
        for k in range(HOT_FINDINGS)
    ]

    def unique_request(index: int) -> bytes:
        return request_bytes(FALCO_PATH, port, TOKEN, falco_body(NAMESPACE, f"soak-{tag}-{index}"))

    samples: list[tuple[float, int]] = []
    cpu_before, wait_before = process_cpu_seconds(pid), runqueue_seconds(pid)
    started = time.perf_counter()
    sampler = asyncio.create_task(sample_rss(pid, samples, started))
    senders = [
        send_open_loop(
            port=port,
            rate=unique_rate,
            duration=duration,
            request=unique_request,
            on_answer=unique.add,
            started=started,
        )
    ]
    if repeat_rate > 0:
        senders.append(
            send_open_loop(
                port=port,
                rate=repeat_rate,
                duration=duration,
                request=lambda index: hot[index % HOT_FINDINGS],
                on_answer=repeats.add,
                connections=REPEAT_CONNECTIONS,
                started=started,
            )
        )
    await asyncio.gather(*senders)
    elapsed = time.perf_counter() - started
    await stop(sampler)
    cpu = (process_cpu_seconds(pid) - cpu_before) / elapsed
    wait = (runqueue_seconds(pid) - wait_before) / elapsed

    at_end = await asyncio.to_thread(target.metrics)
    drained = await drain(target)
    after = await asyncio.to_thread(target.metrics)

    load = [value for _, value in samples]
    # Halves of the time the load actually ran, which is longer than planned if it fell behind.
    second_half = [(t, value) for t, value in samples if t >= elapsed / 2]
    return {
        "duration_s": duration,
        "load_elapsed_s": round(elapsed, 1),
        # An open-loop sender finishes late only when requests queued behind slow answers.
        "load_fell_behind": elapsed > duration * 1.05 + 1,
        "unique_rate": round(unique_rate, 1),
        "unique_achieved_rate": round((unique.ok + unique.non2xx) / elapsed, 1),
        "repeat_rate": round(repeat_rate, 1),
        "repeat_achieved_rate": round((repeats.ok + repeats.non2xx) / elapsed, 1),
        "hot_findings": HOT_FINDINGS if repeat_rate > 0 else 0,
        "unique_sent_ok": unique.ok,
        "repeats_sent_ok": repeats.ok,
        "non2xx": unique.non2xx + repeats.non2xx,
        "errors": unique.errors + repeats.errors,
        "idle_rss_mib": round(statistics.median(v for _, v in idle[-5:]) / MIB, 1),
        "mean_rss_mib": round(statistics.fmean(load) / MIB, 1),
        "max_rss_mib": round(max(load) / MIB, 1),
        "last_rss_mib": round(load[-1] / MIB, 1),
        "rss_after_drain_mib": round(rss(pid) / MIB, 1),
        "slope_mib_per_min_second_half": round(slope_mib_per_minute(second_half), 3),
        "slope_mib_per_min_whole": round(slope_mib_per_minute(samples), 3),
        "rss_trace_every_s": TRACE_EVERY,
        "rss_trace_mib": [round(value / MIB, 1) for _, value in samples[::TRACE_EVERY]],
        "daemon_cpu_fraction": round(cpu, 3),
        "daemon_runqueue_wait_fraction": round(wait, 3),
        "at_end_of_load": gauges(at_end),
        "after_drain": {"drained": drained, **gauges(after)},
    }


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def drain(target: DaemonProcess) -> bool:
    """Wait until the write queue is empty; False if it was not within DRAIN_TIMEOUT."""
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    while time.perf_counter() < deadline:
        metrics = await asyncio.to_thread(target.metrics)
        if metrics.get("zen_watcher_queue_depth", 0.0) == 0:
            return True
        await asyncio.sleep(0.5)
    return False


def gauges(metrics: dict[str, float]) -> dict[str, float]:
    """The numbers that say what the daemon holds, and where the Falco events went."""

    def total(name: str, *labels: str) -> float:
        return sum(
            value
            for key, value in metrics.items()
            if (key == name or key.startswith(name + "{")) and all(lab in key for lab in labels)
        )

    falco = 'source="falco"'
    return {
        "dedup_cache_size": total("zen_watcher_dedup_cache_size"),
        "dedup_pending_repeats": total("zen_watcher_dedup_pending_repeats"),
        "queue_depth": total("zen_watcher_queue_depth"),
        "falco_received": total("zen_watcher_events_received_total", falco),
        "falco_created": total("zen_watcher_events_total", falco, 'bucket="created"'),
        "falco_updated": total("zen_watcher_events_total", falco, 'bucket="updated"'),
        # Status writes of absorbed repeats: one per hot finding per window.
        "falco_flush_writes": total(
            "zen_watcher_observations_updated_total", falco, 'reason="flush"'
        ),
        "falco_deduplicated": total("zen_watcher_events_total", falco, 'bucket="deduplicated"'),
        "falco_failed": total("zen_watcher_events_total", falco, 'bucket="failed"'),
    }


def run_soak(
    running: cluster.Cluster,
    *,
    quick: bool,
    write_capacity: float,
    falco_repeat_capacity: float | None = None,
) -> dict[str, Any]:
    """Idle RSS, then RSS through the soak (see the module's docstring for the load and the
    slope window), with the daemon settings write_capacity was measured with."""
    from bench.load.common import daemon

    if write_capacity <= 0:
        raise ValueError(f"write_capacity must be positive, got {write_capacity!r}")
    duration = 60.0 if quick else 600.0
    if falco_repeat_capacity:
        unique_rate = LOAD_SHARE / 2 * write_capacity
        repeat_rate = LOAD_SHARE / 2 * falco_repeat_capacity
    else:
        unique_rate, repeat_rate = LOAD_SHARE * write_capacity, 0.0
    with daemon(
        running,
        NAMESPACE,
        WEBHOOK_AUTH_TOKEN=TOKEN,
        WATCH_NAMESPACE=NAMESPACE,
    ) as target:
        result = on_load_cpu(
            lambda: soak(
                target, duration=duration, unique_rate=unique_rate, repeat_rate=repeat_rate
            )
        )
    result["write_capacity"] = write_capacity
    result["falco_repeat_capacity"] = falco_repeat_capacity
    print(
        f"  soak {duration:.0f} s at {unique_rate:.0f} unique/s + {repeat_rate:.0f} repeats/s:"
        f" idle {result['idle_rss_mib']} MiB, mean {result['mean_rss_mib']} MiB,"
        f" max {result['max_rss_mib']} MiB; slope {result['slope_mib_per_min_second_half']}"
        f" MiB/min (second half), {result['slope_mib_per_min_whole']} MiB/min (whole);"
        f" dedup cache {result['at_end_of_load']['dedup_cache_size']:.0f},"
        f" queue {result['at_end_of_load']['queue_depth']:.0f}"
        f"{'; the load fell behind its schedule' if result['load_fell_behind'] else ''}",
        flush=True,
    )
    return result


def main() -> int:
    from bench.load.common import control_plane

    parser = argparse.ArgumentParser(prog="python -m bench.points.soak", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="60 s of load instead of 10 min")
    add_write_capacity_argument(parser)
    parser.add_argument(
        "--falco-repeat-capacity",
        type=float,
        default=None,
        help="Falco repeats/s the webhook sustains (bench.points.intake); adds repeats to the mix",
    )
    args = parser.parse_args()
    with control_plane() as running:
        result = run_soak(
            running,
            quick=args.quick,
            write_capacity=args.write_capacity,
            falco_repeat_capacity=args.falco_repeat_capacity,
        )
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
