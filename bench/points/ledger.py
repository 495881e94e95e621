"""Micro-benchmark of the report ledger: memory per Open finding it remembers, and the cost of a
report event, at several sizes.

Run from the repository root: `python -m bench.points.ledger [--findings 10000 100000]`.
Reports of 50 findings each (PolicyReport-like names and namespaces) are fed through
`Ledger.report_seen` as an informer's first list would; memory is the tracemalloc delta of the
ledger, the Findings excluded (the controller drops them once their writes are queued), divided
by the number of findings. The report-event time is the mean over every report of the fill.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from typing import Any

from zenwatcher.finding import Category, Finding, Origin, ResourceRef, Severity
from zenwatcher.pipeline.reconciling import Ledger

PER_REPORT = 50


def _report(index: int) -> tuple[str, list[tuple[Finding, str]]]:
    namespace = f"team-{index % 200}"
    origin = f"{index:016x}"
    findings = [
        (
            Finding(
                source="kyverno",
                category=Category.SECURITY,
                severity=Severity.MEDIUM,
                event_type="policy_violation",
                identity=("policy_violation", "Pod", namespace, f"pod-{index}", f"policy-{k}"),
                resource=ResourceRef(kind="Pod", name=f"pod-{index}", namespace=namespace),
                origin=Origin(uid=f"uid-{index}", key=origin),
            ),
            namespace,
        )
        for k in range(PER_REPORT)
    ]
    return origin, findings


def measure(findings: int) -> dict[str, Any]:
    reports = [_report(index) for index in range(findings // PER_REPORT)]
    for _, entries in reports:  # names are computed (and cached by the caller) before the fill
        for finding, _ in entries:
            _ = finding.name
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    ledger = Ledger(grace_seconds=30.0, clock=lambda: 0.0)
    started = time.perf_counter()
    for origin, entries in reports:
        ledger.report_seen(scope=("PolicyReport", ""), origin=origin, findings=entries)
    elapsed = time.perf_counter() - started
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # A relist: every report seen again, nothing to write.
    started = time.perf_counter()
    for origin, entries in reports:
        ledger.report_seen(scope=("PolicyReport", ""), origin=origin, findings=entries)
    relist = time.perf_counter() - started
    return {
        "findings": findings,
        "bytes_per_finding": round(used / findings),
        "mib_per_100k_findings": round(used / findings * 100_000 / 2**20, 1),
        "first_sync_us_per_report": round(elapsed / len(reports) * 1e6, 1),
        "relist_us_per_report": round(relist / len(reports) * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.points.ledger")
    parser.add_argument("--findings", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = [measure(count) for count in args.findings]
    for row in results:
        print(row, flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
