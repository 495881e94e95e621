"""Shared benchmark plumbing: machine facts, the local control plane, a pinned daemon.

Every benchmark prints its numbers with the conditions beside them, and returns a dict that
`bench.run` collects into one JSON file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess
from tests.harness.paths import REPO_ROOT
from tests.harness.polling import wait_for

DAEMON_CPU = "0"  # the daemon under test
LOAD_CPU = "1"  # load generators and helpers
TOKEN = "bench-token"  # the webhook token every point's daemon is started with


def add_write_capacity_argument(parser: argparse.ArgumentParser) -> None:
    """`--write-capacity`: what the points that load the write path are fractions of."""
    parser.add_argument(
        "--write-capacity",
        type=float,
        required=True,
        help="unique Observations/s through zen-watcher (bench.points.writes)",
    )


def machine_facts() -> dict[str, Any]:
    """Cores, memory, CPU model, Python, git commit, date."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with contextlib.suppress(OSError, StopIteration, ValueError):
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        memory_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "commit": commit,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@contextlib.contextmanager
def control_plane() -> Iterator[cluster.Cluster]:
    """The local control plane (built once, cached), prepared as for the tests; its working
    folder (etcd's data, logs, certificates) is removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="zen-bench-"))
    try:
        with cluster.session_cluster(workdir) as running:
            yield running
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def daemon(
    running: cluster.Cluster,
    namespace: str,
    *,
    ready_timeout: float = 60.0,
    on_spawn: Callable[[DaemonProcess], None] | None = None,
    **env: str,
) -> Iterator[DaemonProcess]:
    """zen-watcher as the restricted user, pinned to DAEMON_CPU, stopped afterwards;
    `on_spawn` is called as soon as the process exists, before it is ready."""
    running.kubectl("create", "namespace", namespace, check=False)
    running.grant_watcher_role(namespace)
    process = DaemonProcess(
        kubeconfig=running.kubeconfig("zen-watcher"),
        workdir=running.workdir,
        env={"POD_NAMESPACE": namespace, "LOG_LEVEL": "warning", **env},
    )
    original = sys.executable
    process_args = ["taskset", "-c", DAEMON_CPU, original, "-m", "zenwatcher", "run"]
    with process.log_path.open("ab") as log:
        process.process = subprocess.Popen(
            process_args, env=process.env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        if on_spawn is not None:
            on_spawn(process)
        process.wait_ready(timeout=ready_timeout)
        yield process
    finally:
        process.stop()


def wait_first_gc_sweep(target: DaemonProcess, *, timeout: float = 120.0) -> None:
    """Until the leader's first GC sweep has run. It comes about 30 s after the Lease is taken
    and lists every Observation in scope; after it the next is an hour away (GC_INTERVAL), so a
    timed round that met it would weigh in seconds what a user meets once an hour."""
    wait_for(
        lambda: target.metric_sum("zen_watcher_gc_runs_total") >= 1, timeout=timeout, interval=1.0
    )


def wait_for_count(
    target: DaemonProcess,
    name: str,
    goal: float,
    *,
    since: float,
    counted_before: float = 0.0,
    longest_sleep: float = 0.5,
    on_poll: Callable[[], None] | None = None,
    **labels: str,
) -> float:
    """Until the counter `name` (summed over `labels`) reaches `goal`; returns when it did
    (perf_counter). Each scrape of /metrics costs the daemon's event loop a few milliseconds, so
    the polls are spaced by half the time the remaining count takes at the rate so far, between
    50 ms and `longest_sleep`: a handful of scrapes a round instead of one every 50 ms, and the
    end still seen within 50 ms. `on_poll` runs at each poll (say, to sample the RSS)."""
    while True:
        counted = target.metric_sum(name, **labels)
        now = time.perf_counter()
        if on_poll is not None:
            on_poll()
        if counted >= goal:
            return now
        rate = (counted - counted_before) / max(now - since, 1e-3)
        remaining = (goal - counted) / rate if rate > 0 else longest_sleep
        time.sleep(min(longest_sleep, max(0.05, remaining / 2)))


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runqueue_seconds(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (schedstat field 2):
    on a shared machine this tells host contention apart from the daemon's own slowness."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds of latencies given in seconds."""
    if not samples:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(samples)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    return {
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": ordered[-1] * 1000,
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
