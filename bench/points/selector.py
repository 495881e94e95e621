"""WATCH_NAMESPACE_SELECTOR: seconds from labelling a namespace to its reports' Observations.

Run from the repository root: `python -m bench.points.selector [--trials 10]`. One daemon
(the leader) runs with a selector; each trial creates a namespace holding a trivy
VulnerabilityReport (two findings), then labels it (one merge patch, the clock starts before
it is sent) and polls the Observations every 10 ms until both exist. A second series creates
the namespace already labelled, then the report: the same path as a namespace appearing. The
local control plane is started for the run; prints the medians and maxima as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from bench.load.common import control_plane, daemon, median
from tests.harness import namespaces
from tests.harness import reports as fx
from tests.harness.controlplane import cluster
from zenwatcher.kube import config as kube_config
from zenwatcher.kube import observations
from zenwatcher.kube.client import KubeClient

KEY = "zen.kube-zen.io/shard"
VALUE = "bench"
POLL_SECONDS = 0.01
TIMEOUT_SECONDS = 60.0
MERGE_PATCH = "application/merge-patch+json"


async def _until_written(client: KubeClient, namespace: str, count: int, started: float) -> float:
    while time.monotonic() - started < TIMEOUT_SECONDS:
        if await observations.count_observations(client, namespace=namespace) >= count:
            return time.monotonic() - started
        await asyncio.sleep(POLL_SECONDS)
    return float("inf")


async def _labelled_later(running: cluster.Cluster, client: KubeClient) -> float:
    name = f"bench-sel-{uuid.uuid4().hex[:8]}"
    running.kubectl("create", "namespace", name)
    report = fx.placed(fx.load_fixture(fx.VULNS), name)
    fx.apply(running, report)
    await asyncio.sleep(1.0)  # the report is settled; nothing is watching it yet
    started = time.monotonic()
    await client.request(
        "PATCH",
        f"/api/v1/namespaces/{name}",
        body={"metadata": {"labels": {KEY: VALUE}}},
        content_type=MERGE_PATCH,
    )
    elapsed = await _until_written(client, name, len(fx.finding_names(report)), started)
    namespaces.remove(running, name)
    return elapsed


async def _created_labelled(running: cluster.Cluster, client: KubeClient) -> float:
    name = f"bench-sel-{uuid.uuid4().hex[:8]}"
    report = fx.placed(fx.load_fixture(fx.VULNS), name)
    started = time.monotonic()
    await client.request(
        "POST",
        "/api/v1/namespaces",
        body={"metadata": {"name": name, "labels": {KEY: VALUE}}},
    )
    fx.apply(running, report)
    elapsed = await _until_written(client, name, len(fx.finding_names(report)), started)
    namespaces.remove(running, name)
    return elapsed


async def _series(running: cluster.Cluster, trials: int) -> dict[str, Any]:
    connection = await kube_config.load_connection(str(running.kubeconfig("admin")))
    client = KubeClient(connection=connection, timeout=10.0)
    results: dict[str, Any] = {"trials": trials}
    try:
        for label, trial in (
            ("labelled_later", _labelled_later),
            ("created_labelled", _created_labelled),
        ):
            times = [await trial(running, client) for _ in range(trials)]
            results[label] = {
                "median_s": round(median(times), 3),
                "max_s": round(max(times), 3),
                "all_s": [round(t, 3) for t in times],
            }
            print(
                f"  {label}: median {median(times):.3f}s max {max(times):.3f}s",
                flush=True,
            )
    finally:
        await client.close()
    return results


def run_selector(running: cluster.Cluster, *, trials: int) -> dict[str, Any]:
    with (
        namespaces.namespace_reader(running),
        daemon(
            running,
            "bench-selector",
            WATCH_NAMESPACE_SELECTOR=f"{KEY}={VALUE}",
            REPORT_RESOLVE_GRACE_SECONDS="1",
        ),
    ):
        return asyncio.run(_series(running, trials))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.points.selector")
    parser.add_argument("--trials", type=int, default=10, help="namespaces per series")
    args = parser.parse_args()
    with control_plane() as running:
        print(json.dumps(run_selector(running, trials=args.trials), indent=2))


if __name__ == "__main__":
    main()
