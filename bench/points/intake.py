"""Webhook intake capacity: the highest open-loop rate with p99 < 50 ms and < 0.1 % non-2xx.

The daemon runs pinned to one core, the load generator on the other. Rates step up until a point
fails; every point is kept with its latencies and the generator's own CPU use.
"""

from __future__ import annotations

from typing import Any

from bench.load.capacity import capacity, load_point
from bench.load.common import TOKEN
from tests.harness.controlplane import cluster


def run_intake(running: cluster.Cluster, *, quick: bool) -> dict[str, Any]:
    from bench.load.common import daemon

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
    with daemon(running, "bench-unique", WEBHOOK_AUTH_TOKEN=TOKEN) as target:
        results["falco_unique"] = capacity(
            target,
            kind="falco-unique",
            rates=[200, 500, 1000, 2000, 4000],
            duration=duration,
            path="/falco/webhook",
        )
    return results
