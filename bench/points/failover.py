"""Leader failover, graceful (SIGTERM) and crash (SIGKILL): seconds until the new leader's
report informers are running, over repeated trials, with the default 15/10/2 s Lease timings."""

from __future__ import annotations

import signal
import time
from typing import Any

from bench.load.common import median
from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess


def _start(running: cluster.Cluster, namespace: str, name: str) -> DaemonProcess:
    process = DaemonProcess(
        kubeconfig=running.kubeconfig("zen-watcher"),
        workdir=running.workdir,
        env={
            "POD_NAMESPACE": namespace,
            "POD_NAME": name,
            "WATCH_NAMESPACE": namespace,
            "LOG_LEVEL": "warning",
            # The shipped default (the test harness sets 0): failover must not wait for it.
            "SHUTDOWN_DELAY_SECONDS": "3",
        },
    )
    process.start(timeout=60)
    return process


def _leading(process: DaemonProcess) -> bool:
    try:
        return (
            process.metric_sum("zen_watcher_leader") == 1
            and process.metric_sum("zen_watcher_informers_synced") == 1
        )
    except OSError:
        return False


def _wait(predicate: Any, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.02)
    return float("inf")


def trial(running: cluster.Cluster, namespace: str, index: int, signum: signal.Signals) -> float:
    first = _start(running, namespace, f"a-{index}")
    second = _start(running, namespace, f"b-{index}")
    try:
        _wait(lambda: _leading(first) or _leading(second), 60)
        leader, follower = (first, second) if _leading(first) else (second, first)
        time.sleep(1.0)
        leader.signal(signum)
        return _wait(lambda: _leading(follower), 40)
    finally:
        first.stop()
        second.stop()


def run_failover(running: cluster.Cluster, *, quick: bool) -> dict[str, Any]:
    trials = 3 if quick else 10
    results: dict[str, Any] = {"trials": trials}
    for label, signum in (("graceful", signal.SIGTERM), ("sigkill", signal.SIGKILL)):
        namespace = f"bench-failover-{label}"
        running.kubectl("create", "namespace", namespace, check=False)
        running.grant_watcher_role(namespace)
        times = [trial(running, namespace, index, signum) for index in range(trials)]
        results[label] = {
            "median_s": round(median(times), 2),
            "max_s": round(max(times), 2),
            "all_s": [round(t, 2) for t in times],
        }
        print(f"  failover {label}: median {median(times):.2f}s max {max(times):.2f}s", flush=True)
    return results
