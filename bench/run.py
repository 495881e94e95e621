"""One command for every benchmark: `python -m bench.run [--quick] [--json FILE] [--only …]`.

Starts the local control plane (built once and cached, as for the tests), runs each point with
the daemon pinned to CPU 0 and load from a separate process on CPU 1, prints a Markdown table
with the targets beside the measured values, and writes the raw results as JSON.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

import orjson

from bench import report
from bench.load import common
from bench.points import failover, intake, latency, peer, soak, sync, writes
from bench.points.dedup import measure as dedup_measure

POINTS = ("intake", "peer", "writes", "latency", "soak", "dedup", "sync", "failover", "idle")


def run(
    points: tuple[str, ...],
    *,
    quick: bool,
    write_capacity: float | None = None,
    sync_kinds: tuple[str, ...] = sync.SYNC_KINDS,
) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": common.machine_facts(), "quick": quick}
    with common.control_plane() as running:
        version = running.server_version()
        results["machine"]["kubernetes"] = version["gitVersion"]
        results["machine"]["etcd"] = (
            running.local.bin_dir.name.split("-etcd-")[-1] if running.local else "external"
        )
        if "dedup" in points:
            results["dedup"] = {
                str(keys): dedup_measure(keys, 1 if quick else 3) for keys in (100_000, 1_000_000)
            }
        if "intake" in points:
            results["intake"] = intake.run_intake(running, quick=quick)
        if "peer" in points:
            try:
                results["peer"] = peer.run_peer(quick=quick)
            except peer.PeerError as error:  # e.g. a module proxy that does not serve it
                print(f"falcosidekick point unavailable: {error}", flush=True)
                results["peer"] = {"unavailable": str(error)}
        if "writes" in points:
            results["writes"] = writes.run_writes(running, quick=quick)
            write_capacity = results["writes"]["zen_watcher_per_second"]
        if "latency" in points or "soak" in points:
            if not write_capacity:
                raise SystemExit("latency and soak need the write capacity: add writes, or pass it")
            if "latency" in points:
                results["latency"] = latency.run_latency(
                    running, quick=quick, write_capacity=write_capacity
                )
            if "soak" in points:
                repeats = (results.get("intake", {}).get("falco_repeats") or {}).get("best")
                results["soak"] = soak.run_soak(
                    running,
                    quick=quick,
                    write_capacity=write_capacity,
                    falco_repeat_capacity=repeats["events_per_second"] if repeats else None,
                )
        if "sync" in points:
            results["sync"] = sync.run_sync(running, quick=quick, kinds=sync_kinds)
        if "failover" in points:
            results["failover"] = failover.run_failover(running, quick=quick)
        if "idle" in points:
            results["idle"] = sync.idle_rss(running)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter points and smaller data sets")
    parser.add_argument(
        "--json", default="bench/results/latest.json", help="where to write raw results"
    )
    parser.add_argument("--only", nargs="*", choices=POINTS, default=list(POINTS))
    parser.add_argument(
        "--write-capacity",
        type=float,
        default=None,
        help="unique Observations/s for latency and soak when writes is not among the points",
    )
    parser.add_argument(
        "--sync-kinds", nargs="*", choices=sync.SYNC_KINDS, default=list(sync.SYNC_KINDS)
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the control plane and daemons are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    results = run(
        tuple(args.only),
        quick=args.quick,
        write_capacity=args.write_capacity,
        sync_kinds=tuple(args.sync_kinds),
    )
    output = Path(args.json)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(report.table(results))
    print(f"\nraw results: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
