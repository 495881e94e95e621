"""Report sync: time and peak RSS for a leader's first full reconciliation of many reports.

PolicyReports of 50 failing results each and VulnerabilityReports of 300 vulnerabilities each
are created first; then a daemon starts and is timed until every finding is created. The
ceiling to compare with is the API server's raw create rate of the same Observations (built
from the same reports by the daemon's own mapping, in a namespace of their own, which an idle
zen-watcher watches as the sync's namespace is watched) at the writer's concurrency
(bench.points.writes' raw client, pinned to the daemon's core), measured right before and right
after the sync, on the same store: the sync's findings/s over the mean of the two is the
point's `ratio_vs_raw_create`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.load.common import TOKEN, daemon, process_cpu_seconds, rss, wait_for_count
from bench.points import writes
from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess
from zenwatcher.kube import config as kube_config
from zenwatcher.kube.client import KubeClient
from zenwatcher.mapping.reports.dispatch import map_report
from zenwatcher.observation import to_observation

# One namespace holds every finding of a point (up to 60,000), more than the default
# OBSERVATION_BUDGET_PER_NAMESPACE (25,000) admits.
SYNC_OVERRIDES = {"OBSERVATION_BUDGET_PER_NAMESPACE": "0"}
RAW_NAMESPACE = "bench-sync-raw"


def policy_report(namespace: str, index: int, results: int) -> dict[str, Any]:
    return {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": f"pr-{index}", "namespace": namespace},
        "scope": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": f"pod-{index}",
            "namespace": namespace,
        },
        "results": [
            {
                "policy": f"policy-{r % 10}",
                "rule": f"rule-{r}",
                "result": "fail",
                "severity": "medium",
                "source": "kyverno",
                "message": "validation failed",
            }
            for r in range(results)
        ],
    }


def vulnerability_report(namespace: str, index: int, vulns: int) -> dict[str, Any]:
    stamp = "2024-01-01T00:00:00Z"
    return {
        "apiVersion": "aquasecurity.github.io/v1alpha1",
        "kind": "VulnerabilityReport",
        "metadata": {
            "name": f"vr-{index}",
            "namespace": namespace,
            "labels": {
                "trivy-operator.resource.kind": "ReplicaSet",
                "trivy-operator.resource.name": f"rs-{index}",
                "trivy-operator.resource.namespace": namespace,
                "trivy-operator.container.name": "app",
            },
        },
        "report": {
            "updateTimestamp": stamp,
            "artifact": {"repository": "library/nginx", "tag": "1.25"},
            "registry": {"server": "index.docker.io"},
            "os": {"family": "debian", "name": "12"},
            "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "0.50.0"},
            "summary": {
                "criticalCount": 0,
                "highCount": vulns,
                "lowCount": 0,
                "mediumCount": 0,
                "unknownCount": 0,
            },
            "vulnerabilities": [
                {
                    "vulnerabilityID": f"CVE-2024-{v:05d}",
                    "resource": f"lib{v % 50}",
                    "installedVersion": "1.0",
                    "fixedVersion": "1.1",
                    "severity": "HIGH",
                    "title": "t",
                    "primaryLink": "",
                    "score": 7.5,
                    "lastModifiedDate": stamp,
                    "publishedDate": stamp,
                    "target": "library/nginx:1.25",
                }
                for v in range(vulns)
            ],
        },
    }


async def create_all(running: cluster.Cluster, documents: list[dict[str, Any]]) -> None:
    connection = await kube_config.load_connection(str(running.kubeconfig("admin")))
    client = KubeClient(connection=connection, timeout=60)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for document in documents:
        queue.put_nowait(document)

    async def worker() -> None:
        while not queue.empty():
            document = queue.get_nowait()
            group_version = document["apiVersion"]
            plural = document["kind"].lower() + "s"
            namespace = document["metadata"]["namespace"]
            await client.request(
                "POST", f"/apis/{group_version}/namespaces/{namespace}/{plural}", body=document
            )

    await asyncio.gather(*(worker() for _ in range(8)))
    await client.close()


class FirstWrite:
    """When a starting daemon's first Observation was written, polled from its metrics."""

    def __init__(self) -> None:
        self.at: float | None = None

    def watch(self, process: DaemonProcess) -> None:
        threading.Thread(target=self._poll, args=(process,), daemon=True).start()

    def _poll(self, process: DaemonProcess) -> None:
        deadline = time.perf_counter() + 1800
        while time.perf_counter() < deadline and process.process is not None:
            with contextlib.suppress(OSError, ValueError):
                if process.metric_sum("zen_watcher_events_total", bucket="created") > 0:
                    self.at = time.perf_counter()
                    return
            time.sleep(0.02)


def report_bodies(documents: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The Observations a sync of `documents` writes, built by the daemon's own mapping and body
    (phase Open, the shipped TTL), with the reports moved to `namespace`: equal objects for the
    raw client, under names the sync's own do not clash with."""
    now = datetime.now(UTC)
    bodies = []
    for document in documents:
        moved = copy.deepcopy(document)
        moved["metadata"]["namespace"] = namespace
        moved["metadata"]["uid"] = str(uuid.uuid4())  # as the API server gives the listed report
        if isinstance(moved.get("scope"), dict):
            moved["scope"]["namespace"] = namespace
        labels = moved["metadata"].get("labels", {})
        if "trivy-operator.resource.namespace" in labels:
            labels["trivy-operator.resource.namespace"] = namespace
        for finding in map_report(moved).findings:
            bodies.append(
                to_observation(finding, namespace=namespace, now=now, ttl_seconds=writes.TTL)
            )
    return bodies


def raw_create_rate(
    running: cluster.Cluster, bodies: list[dict[str, Any]], *, watched: bool = True
) -> float:
    """Observations/s created straight through our client at the writer's concurrency, on the
    daemon's core, of `bodies` (in RAW_NAMESPACE, `report_bodies`); they are deleted afterwards,
    so the store is left as it was and the same bodies serve the next round.

    `watched`: as the sync's own creates are, by an idle zen-watcher whose scope is the raw
    namespace. The leader watches the metadata of every Observation in its scope (the findings
    gauge), so each create is also a watch event the API server sends and the daemon reads, on
    the shared cores; that costs the raw client part of its rate (the unwatched round is
    printed beside it), and the writes point's raw rounds pay it too. For the largest points the
    idle daemon's first GC sweep (30 s after it leads) falls inside the round, as the syncing
    daemon's does inside the sync."""
    running.kubectl("create", "namespace", RAW_NAMESPACE, check=False)
    with contextlib.ExitStack() as stack:
        if watched:
            stack.enter_context(
                daemon(
                    running, RAW_NAMESPACE, WATCH_NAMESPACE=RAW_NAMESPACE, WEBHOOK_AUTH_TOKEN=TOKEN
                )
            )
            time.sleep(writes.STEADY_AFTER_READY)
        with writes.on_daemon_cpu():
            rate = asyncio.run(writes.raw_rate(running, bodies))
    asyncio.run(writes.delete_all(running, (RAW_NAMESPACE,)))
    return rate


def sync_point(
    running: cluster.Cluster,
    namespace: str,
    documents: list[dict[str, Any]],
    findings: int,
    *,
    against_raw: bool = True,
) -> dict[str, Any]:
    running.kubectl("create", "namespace", namespace, check=False)
    asyncio.run(create_all(running, documents))
    raw_bodies = report_bodies(documents, RAW_NAMESPACE) if against_raw else []
    raw_unwatched = raw_create_rate(running, raw_bodies, watched=False) if against_raw else 0.0
    raw_before = raw_create_rate(running, raw_bodies) if against_raw else 0.0
    started = time.perf_counter()
    # A leader is not ready until its informers have listed, which with a big backlog waits on
    # the write queue: allow the whole sync.
    # The shipped defaults but one: every finding is in one namespace, more than the default
    # per-namespace budget takes, so that budget is off (printed in the result).
    first_write = FirstWrite()
    with daemon(
        running,
        namespace,
        ready_timeout=1800,
        on_spawn=first_write.watch,
        WATCH_NAMESPACE=namespace,
        **SYNC_OVERRIDES,
    ) as target:
        assert target.process is not None
        pid = target.process.pid
        peak = 0

        def sample() -> None:
            nonlocal peak
            peak = max(peak, rss(pid))
            if time.perf_counter() - started > 1800:
                raise RuntimeError("sync did not finish in 30 minutes")

        done = wait_for_count(
            target,
            "zen_watcher_events_total",
            findings,
            since=started,
            on_poll=sample,
            bucket="created",
        )
        elapsed = done - started
        # Whether our CPU or the API server bounds the sync: the daemon's share of its core.
        cpu = process_cpu_seconds(target.process.pid)
    result = {
        "overrides": SYNC_OVERRIDES,
        "reports": len(documents),
        "findings": findings,
        "seconds": round(elapsed, 1),
        "findings_per_second": round(findings / elapsed, 1),
        "peak_rss_mib": round(peak / 1024 / 1024, 1),
        "daemon_cpu_fraction": round(cpu / elapsed, 3),
    }
    writing_rate = None
    if first_write.at is not None:
        # From the first Observation written: what the sync's writes ran at, start-up (the
        # process, the Lease, the report list) left out; `seconds` keeps it in.
        writing = started + elapsed - first_write.at
        writing_rate = findings / writing
        result["writing_seconds"] = round(writing, 1)
        result["writing_findings_per_second"] = round(writing_rate, 1)
    if against_raw:
        raw_after = raw_create_rate(running, raw_bodies)
        raw = (raw_before + raw_after) / 2
        result["raw_create_rounds"] = [round(raw_before, 1), round(raw_after, 1)]
        result["raw_create_unwatched_per_second"] = round(raw_unwatched, 1)
        result["raw_create_per_second"] = round(raw, 1)
        result["ratio_vs_raw_create"] = round(findings / elapsed / raw, 3)
        if writing_rate is not None:
            result["writing_ratio_vs_raw_create"] = round(writing_rate / raw, 3)
    print(f"  sync {namespace}: {result}", flush=True)
    return result


SYNC_KINDS = ("policy_reports", "vulnerability_reports")


def run_sync(
    running: cluster.Cluster, *, quick: bool, kinds: tuple[str, ...] = SYNC_KINDS
) -> dict[str, Any]:
    policy_count, vuln_count = (100, 20) if quick else (1000, 200)
    results = {}
    if "policy_reports" in kinds:
        policy_docs = [policy_report("bench-sync-pr", i, 50) for i in range(policy_count)]
        results["policy_reports"] = sync_point(
            running, "bench-sync-pr", policy_docs, policy_count * 50
        )
    if "vulnerability_reports" in kinds:
        vuln_docs = [vulnerability_report("bench-sync-vr", i, 300) for i in range(vuln_count)]
        results["vulnerability_reports"] = sync_point(
            running, "bench-sync-vr", vuln_docs, vuln_count * 300
        )
    return results


def idle_rss(running: cluster.Cluster) -> dict[str, Any]:
    with daemon(running, "bench-idle", WATCH_NAMESPACE="bench-idle") as target:
        assert target.process is not None
        time.sleep(10)
        value = rss(target.process.pid)
    print(f"  idle RSS {value / 1024 / 1024:.1f} MiB", flush=True)
    return {"idle_rss_mib": round(value / 1024 / 1024, 1)}
