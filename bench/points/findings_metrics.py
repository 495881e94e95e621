"""Series count and /metrics size of the findings metrics, by label mode and number of findings.

Run from the repository root: `python -m bench.points.findings_metrics [--findings 1000 10000]`.

For each mode (`simple`, `detailed`) and each count, a fresh registry with every zen-watcher
family counts that many distinct new findings (`zen_watcher_findings_detected_total`, the
default cap of FINDINGS_METRICS_MAX_SERIES) and the leader's gauge of existing findings
(`zen_watcher_findings`) holds them all. The findings are drawn (seeded) from a cluster shaped
like the ones the tools report on: 100 namespaces; trivy CVEs (one `vulnerability` rule per
severity), 80 trivy checks, 30 Kyverno policies of 2 rules, 40 Falco rules and 15 audit rules.
A `distinct-rules` row gives the worst case, every finding a rule of its own, where the cap
holds. The size is the Prometheus text exposition the /metrics handler serves, in bytes.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

# Run as a script, the repository root is not on sys.path; the package is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from prometheus_client import CollectorRegistry, generate_latest

from zenwatcher.finding import Category, Finding, ResourceRef, Severity
from zenwatcher.metrics import Metrics
from zenwatcher.metrics.findings import CurrentKey, FindingsMode

NAMESPACES = [f"team-{index:03d}" for index in range(100)]
SEVERITIES = list(Severity)


def cluster_findings(count: int, *, distinct_rules: bool, seed: int = 7) -> Iterator[Finding]:
    """`count` distinct findings, their sources, rules and namespaces drawn as described."""
    rng = random.Random(seed)
    for index in range(count):
        kind = rng.choices(
            ["trivy-cve", "trivy-check", "kyverno", "falco", "audit"], weights=[50, 15, 15, 15, 5]
        )[0]
        namespace = rng.choice(NAMESPACES)
        details: dict[str, object]
        source = "trivy" if kind.startswith("trivy") else kind
        if distinct_rules:
            details = {"rule": f"rule-{index}"}
        elif kind == "trivy-cve":
            details = {"vulnerabilityID": f"CVE-2026-{index}"}
        elif kind == "trivy-check":
            details = {"checkID": f"KSV{rng.randrange(80):03d}"}
        elif kind == "kyverno":
            details = {"policy": f"policy-{rng.randrange(30)}", "rule": f"rule-{rng.randrange(2)}"}
        else:
            details = {"rule": f"{kind}-rule-{rng.randrange(40 if kind == 'falco' else 15)}"}
        yield Finding(
            source=source,
            category=Category.SECURITY,
            severity=rng.choice(SEVERITIES),
            event_type="finding",
            identity=(str(index),),
            resource=ResourceRef(kind="Pod", name=f"pod-{index}", namespace=namespace),
            details=details,
        )


def measure(mode: FindingsMode, count: int, *, distinct_rules: bool = False) -> dict[str, int]:
    """Series of each findings family and the exposition size with them."""
    metrics = Metrics(CollectorRegistry(), findings_mode=mode)
    baseline = len(generate_latest(metrics.registry))
    current: Counter[CurrentKey] = Counter()
    rng = random.Random(11)
    for finding in cluster_findings(count, distinct_rules=distinct_rules):
        metrics.findings_detected.detected(finding, finding.namespace)
        phase = (
            "resolved" if finding.source in {"trivy", "kyverno"} and rng.random() < 0.3 else "open"
        )
        current[(finding.source, finding.severity.value, finding.namespace, phase)] += 1
    counters_only = len(generate_latest(metrics.registry))
    metrics.findings_current.set(current)
    exposition = generate_latest(metrics.registry)
    return {
        "detected_bytes": counters_only - baseline,
        "current_bytes": len(exposition) - counters_only,
        "detected_series": metrics.findings_detected.series(),
        "current_series": len(current),
        "bytes_without": baseline,
        "bytes": len(exposition),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    print(
        "| mode | findings | detected series | their bytes | gauge series | their bytes "
        "| /metrics bytes (without findings) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = [(mode, False) for mode in (FindingsMode.SIMPLE, FindingsMode.DETAILED)]
    rows.append((FindingsMode.DETAILED, True))
    for mode, distinct in rows:
        for count in args.findings:
            result = measure(mode, count, distinct_rules=distinct)
            label = f"{mode.value}{' (distinct rules)' if distinct else ''}"
            print(
                f"| {label} | {count:,} | {result['detected_series']:,} | "
                f"{result['detected_bytes']:,} | {result['current_series']:,} | "
                f"{result['current_bytes']:,} | {result['bytes']:,} ({result['bytes_without']:,}) |"
            )


if __name__ == "__main__":
    main()
