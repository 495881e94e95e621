"""What one Observation costs in etcd, per source: database bytes in use before and after N
Observations, with history compacted and the database defragmented each time.

Run from the repository root: `python -m bench.points.etcd_cost [--count 2000]`. Each source's
Observations come from its real fixtures (the first mapped finding of each), made distinct by
their identity, written as the daemon writes them (one create, status included). The local
control plane is started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import yaml

from bench.load.common import control_plane
from tests.harness import payloads
from tests.harness.controlplane import cluster
from tests.harness.paths import SHARED_FIXTURES
from zenwatcher.finding import Finding
from zenwatcher.kube import config as kube_config
from zenwatcher.kube import observations
from zenwatcher.kube.client import KubeClient
from zenwatcher.mapping import falco
from zenwatcher.mapping.audit.once import AuditJudgedOnce
from zenwatcher.mapping.rejection import Ignored, Rejected
from zenwatcher.mapping.reports import dispatch
from zenwatcher.observation import to_observation

CONCURRENCY = 8


def sample_findings() -> dict[str, Finding]:
    """One representative finding per source, from the fixtures."""
    samples: dict[str, Finding] = {}
    samples["falco"] = falco.map_falco_alert(payloads.falco_alerts()[0][1])
    judge = AuditJudgedOnce()
    for event in payloads.audit_events():
        try:
            samples["audit"] = judge(event)
            break
        except (Ignored, Rejected):
            continue
    for source, folder in (("kyverno", "kyverno"), ("trivy", "trivy")):
        for path in sorted((SHARED_FIXTURES / folder).rglob("*.yaml")):
            for document in yaml.safe_load_all(path.read_text()):
                for report in dispatch.split_documents(document):
                    try:
                        mapped = dispatch.map_report(report)
                    except (Ignored, Rejected):
                        continue
                    if mapped.findings:
                        samples.setdefault(source, mapped.findings[0])
            if source in samples:
                break
    return samples


async def write_copies(
    running: cluster.Cluster, namespace: str, finding: Finding, count: int
) -> None:
    connection = await kube_config.load_connection(str(running.kubeconfig("admin")))
    client = KubeClient(connection=connection, timeout=60)
    now = datetime.now(UTC)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for index in range(count):
        copy = dataclasses.replace(finding, identity=(*finding.identity, str(index)))
        queue.put_nowait(to_observation(copy, namespace=namespace, now=now, ttl_seconds=3600))

    async def worker() -> None:
        while not queue.empty():
            await observations.create_observation(client, queue.get_nowait())

    try:
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    finally:
        await client.close()


def run_etcd_cost(running: cluster.Cluster, *, count: int) -> dict[str, Any]:
    assert running.local is not None, "needs the local control plane's etcd"
    results: dict[str, Any] = {"count_per_source": count}
    for source, finding in sample_findings().items():
        namespace = f"bench-etcd-{source}"
        running.kubectl("create", "namespace", namespace, check=False)
        before = running.local.etcd_bytes_in_use()
        asyncio.run(write_copies(running, namespace, finding, count))
        after = running.local.etcd_bytes_in_use()
        body = to_observation(finding, namespace=namespace, now=datetime.now(UTC), ttl_seconds=3600)
        results[source] = {
            "etcd_bytes_per_observation": round((after - before) / count),
            "json_bytes_per_observation": len(json.dumps(body)),
        }
        print(f"  etcd cost {source}: {results[source]}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.points.etcd_cost")
    parser.add_argument("--count", type=int, default=2000, help="Observations per source")
    args = parser.parse_args()
    with control_plane() as running:
        print(json.dumps(run_etcd_cost(running, count=args.count), indent=2))


if __name__ == "__main__":
    main()
