"""The leader's metadata-only watch of the Observations (the findings gauges): CPU, RSS and time
to its first complete list, and CPU per watch event, at 10,000 and 50,000 Observations.

Run from the repository root: `python -m bench.points.findings_watch [--observations 10000 50000]`.

It starts the local control plane (the tests' one), creates the Observations (falco and
kyverno findings of every severity, in one namespace) as the admin, then runs the gauge task
(`leader.findings.findings_gauge`) as the restricted user in a child process of its own, so its
CPU (user + system, from /proc) and RSS are only its own. The child reports after its first list;
then the parent resolves 2,000 report findings (a label change each) and the child reports the
CPU it spent applying those watch events. CPU is the child's own process time from the task's
start (interpreter start-up and imports excluded); RSS is the child's whole resident set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, the repository root is not on sys.path; the package is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.load.common import control_plane, rss
from tests.harness.controlplane import cluster
from zenwatcher.finding import Category, Finding, Origin, ResourceRef, Severity
from zenwatcher.kube import config as kube_config
from zenwatcher.kube import observations
from zenwatcher.kube.client import KubeClient
from zenwatcher.observation import LABEL_PHASE, to_observation

NAMESPACE = "bench-findings-watch"
CHANGES = 2000
WORKERS = 16


def finding(index: int) -> Finding:
    """Every other one a report finding (resolvable), the rest Falco alerts."""
    report = index % 2 == 0
    return Finding(
        source="kyverno" if report else "falco",
        category=Category.SECURITY,
        severity=list(Severity)[index % 5],
        event_type="policy_violation" if report else "runtime_detection",
        identity=(str(index),),
        resource=ResourceRef(kind="Pod", name=f"pod-{index}", namespace=NAMESPACE),
        title="bench finding",
        message="m" * 200,
        details={"rule": f"rule-{index % 40}", "policy": f"policy-{index % 30}"},
        origin=Origin(uid="u", key="0123456789abcdef") if report else None,
    )


async def admin_client(running: cluster.Cluster) -> KubeClient:
    connection = await kube_config.load_connection(str(running.kubeconfig("admin")))
    return KubeClient(connection=connection, timeout=60)


async def create_up_to(running: cluster.Cluster, start: int, stop: int) -> None:
    client = await admin_client(running)
    now = datetime.now(UTC)
    indexes = iter(range(start, stop))

    async def worker() -> None:
        for index in indexes:
            body = to_observation(finding(index), namespace=NAMESPACE, now=now, ttl_seconds=86400)
            await observations.create_observation(client, body)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    await client.close()


async def resolve_some(running: cluster.Cluster, count: int, *, offset: int) -> None:
    """Turn `count` open report findings resolved: one label (and status) change each."""
    client = await admin_client(running)
    indexes = iter(range(offset, offset + 2 * count, 2))

    async def worker() -> None:
        for index in indexes:
            await observations.patch_status(
                client,
                NAMESPACE,
                finding(index).name,
                status={"phase": "Resolved"},
                labels={LABEL_PHASE: "resolved"},
            )

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    await client.close()


CHILD = """
import asyncio, json, sys, time
from prometheus_client import CollectorRegistry
from zenwatcher.kube import config
from zenwatcher.kube.client import KubeClient
from zenwatcher.leader.findings import findings_gauge
from zenwatcher.metrics import Metrics

async def main(kubeconfig, namespace, expected_resolved):
    client = KubeClient(connection=await config.load_connection(kubeconfig), timeout=60)
    metrics = Metrics(CollectorRegistry())
    cpu, started = time.process_time(), time.perf_counter()
    task = asyncio.create_task(findings_gauge(client=client, namespaces=(namespace,), metrics=metrics))
    def total(phase):
        return sum(s.value for f in metrics.registry.collect() for s in f.samples
                   if s.name == "zen_watcher_findings" and s.labels["phase"] == phase)
    while not total("open") + total("resolved"):
        await asyncio.sleep(0.01)
    print("RESULT", json.dumps({"synced_seconds": time.perf_counter() - started,
                      "sync_cpu": time.process_time() - cpu,
                      "objects": total("open") + total("resolved")}), flush=True)
    # Blocks the loop on purpose: the parent's changes wait in the socket, and the CPU below
    # is that of applying them.
    sys.stdin.readline()
    cpu = time.process_time()
    while total("resolved") < expected_resolved:
        await asyncio.sleep(0.01)
    print("RESULT", json.dumps({"event_cpu": time.process_time() - cpu}), flush=True)
    sys.stdin.readline()  # the parent has read our RSS
    task.cancel()
    await client.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def measure(
    running: cluster.Cluster, count: int, *, resolved_before: int, changes: int
) -> dict[str, Any]:
    """Start a gauge child over `count` Observations; time and measure its list and events."""
    expected = resolved_before + changes
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(running.kubeconfig("zen-watcher")),
            NAMESPACE,
            str(expected),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        synced = child_result(child)
        list_rss = rss(child.pid)
        asyncio.run(resolve_some(running, changes, offset=2 * resolved_before))
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        event_cpu = child_result(child)["event_cpu"]
        after_rss = rss(child.pid)
        child.stdin.write("done\n")
        child.stdin.flush()
        child.wait(timeout=60)
    finally:
        child.kill()
    result = {
        "observations": int(synced["objects"]),
        "first_list_seconds": round(synced["synced_seconds"], 2),
        "cpu_seconds_to_sync": round(synced["sync_cpu"], 2),
        "rss_mib_after_list": round(list_rss / 2**20, 1),
        "rss_mib_after_events": round(after_rss / 2**20, 1),
        "watch_events": changes,
        "cpu_ms_per_event": round(event_cpu * 1000 / changes, 3),
    }
    print(f"  {result}", flush=True)
    return result


def child_result(child: subprocess.Popen[str]) -> dict[str, Any]:
    """The child's next RESULT line (its log lines share stdout)."""
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return result
    raise RuntimeError(f"the gauge child ended without a result (exit {child.wait()})")


def baseline_rss() -> float:
    """RSS of a child that imported the same modules and did nothing (MiB)."""
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import zenwatcher.leader.findings, zenwatcher.metrics, prometheus_client; "
            "print(open('/proc/self/status').read())",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    for line in child.stdout.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, nargs="+", default=[10_000, 50_000])
    args = parser.parse_args()
    rows = []
    with control_plane() as running:
        running.kubectl("create", "namespace", NAMESPACE, check=False)
        created = resolved = 0
        for count in sorted(args.observations):
            started = time.perf_counter()
            asyncio.run(create_up_to(running, created, count))
            print(f"  created {count - created} in {time.perf_counter() - started:.0f} s")
            # Report findings are the even indexes; each round resolves ones not yet resolved.
            changes = min(CHANGES, count // 2 - resolved)
            rows.append(measure(running, count, resolved_before=resolved, changes=changes))
            resolved += changes
            created = count
    print(f"RSS of the same imports, idle: {baseline_rss()} MiB")
    print(
        "| Observations | first list (s) | CPU to sync (s) | RSS after list (MiB) "
        "| RSS after events (MiB) | CPU per watch event (ms) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['observations']:,} | {row['first_list_seconds']} | "
            f"{row['cpu_seconds_to_sync']} | {row['rss_mib_after_list']} | "
            f"{row['rss_mib_after_events']} | {row['cpu_ms_per_event']} |"
        )


if __name__ == "__main__":
    main()
