"""The cost curve: how the work grows with its size, at the shipped defaults.

Run from the repository root: `python -m bench.points.curve [--reports 50 200 800]
[--svg docs/scaling-curve.svg]`. Three measures, each at several sizes:
- report sync: a leader's first reconciliation of N PolicyReports of 50 failing results each
  (bench.points.sync's point): seconds, findings/s, peak RSS, daemon CPU per finding;
- the report ledger: bytes per Open finding and time per report event (bench.points.ledger);
- the dedup cache: CPU per observe() at 10^4, 10^5 and 10^6 keys (bench.points.dedup).
It prints a table and writes an SVG plot of sync time and peak RSS against findings.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from bench.load.common import control_plane
from bench.points import dedup, ledger
from bench.points.sync import policy_report, sync_point
from tests.harness.controlplane import cluster

RESULTS_PER_REPORT = 50


def sync_curve(running: cluster.Cluster, sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for reports in sizes:
        namespace = f"bench-curve-{reports}"
        documents = [policy_report(namespace, i, RESULTS_PER_REPORT) for i in range(reports)]
        point = sync_point(running, namespace, documents, reports * RESULTS_PER_REPORT)
        cpu_seconds = point["daemon_cpu_fraction"] * point["seconds"]
        rows.append(
            point | {"daemon_cpu_us_per_finding": round(cpu_seconds / point["findings"] * 1e6, 1)}
        )
    return rows


def dedup_curve(key_counts: list[int]) -> list[dict[str, Any]]:
    rows = []
    for count in key_counts:
        rates = dedup.timings(count, repeat=3)
        rows.append(
            {
                "keys": count,
                "first_ns": round(1e9 / rates["first_per_s"]),
                "repeat_ns": round(1e9 / rates["repeat_per_s"]),
                "evicting_ns": round(1e9 / rates["evicting_per_s"]),
            }
        )
        print(f"  dedup {rows[-1]}", flush=True)
    return rows


def svg(sync_rows: list[dict[str, Any]]) -> str:
    """Sync seconds and peak RSS against findings, on shared x; plain SVG, no dependencies."""
    width, height, pad = 640, 360, 60
    xs: list[int] = [int(row["findings"]) for row in sync_rows]
    series = (
        ("seconds", "sync time (s)", "#1f77b4"),
        ("peak_rss_mib", "peak RSS (MiB)", "#d62728"),
    )
    x_max = max(xs) * 1.05

    def x_at(value: float) -> float:
        return float(pad + (width - 2 * pad) * value / x_max)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle">Report sync at the shipped defaults'
        "</text>",
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 20}" text-anchor="middle">findings</text>',
    ]
    for value in xs:
        parts.append(
            f'<text x="{x_at(value):.0f}" y="{height - pad + 15}" text-anchor="middle">'
            f"{value:,}</text>"
        )
    for index, (key, label, colour) in enumerate(series):
        y_max = max(row[key] for row in sync_rows) * 1.1 or 1.0

        def y_at(value: float, y_max: float = y_max) -> float:
            return height - pad - (height - 2 * pad) * value / y_max

        points = " ".join(f"{x_at(row['findings']):.1f},{y_at(row[key]):.1f}" for row in sync_rows)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        for row in sync_rows:
            parts.append(
                f'<circle cx="{x_at(row["findings"]):.1f}" cy="{y_at(row[key]):.1f}" r="3" '
                f'fill="{colour}"/>'
                f'<text x="{x_at(row["findings"]) - 8:.1f}" '
                f'y="{y_at(row[key]) + (-8 if index == 0 else 16):.1f}" text-anchor="end" '
                f'fill="{colour}">{row[key]}</text>'
            )
        parts.append(
            f'<text x="{pad + 10}" y="{pad - 20 + 16 * index}" fill="{colour}">{label}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.points.curve")
    parser.add_argument("--reports", type=int, nargs="+", default=[50, 200, 800])
    parser.add_argument("--keys", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--ledger", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--svg", default="docs/scaling-curve.svg")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the control plane and daemons are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    results: dict[str, Any] = {
        "ledger": [ledger.measure(count) for count in args.ledger],
        "dedup": dedup_curve(args.keys),
    }
    for row in results["ledger"]:
        print(f"  ledger {row}", flush=True)
    with control_plane() as running:
        results["sync"] = sync_curve(running, args.reports)
    out = Path(args.svg)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg(results["sync"]), encoding="utf-8")
    print(json.dumps(results, indent=2))
    print(f"plot: {out}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
