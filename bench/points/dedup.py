"""Micro-benchmark of the dedup cache: memory per key, observe() rate, due_flushes() cost.

Run from the repository root: `python -m bench.points.dedup [--keys 100000 1000000] [--json FILE]`.
Memory is the tracemalloc delta of filling a cache, key strings included and the shared payload
excluded, divided by the number of keys. Timings use a steppable clock, so nothing expires
mid-run; each figure is the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, the repository root is not on sys.path; the package is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from zenwatcher.pipeline import dedup

WINDOW = 60.0
WALL = datetime(2025, 6, 1, tzinfo=UTC)
PAYLOAD = object()  # shared by every key, like one Finding per distinct key would not be

KEY_FORMATS: dict[str, Callable[[int], Hashable]] = {
    # An Observation name: "<source>-<16 hex>", 22 characters (what the daemon keyed on before
    # it keyed on (source, identity); see "identity" in `measure`).
    "name": lambda index: f"falco-{index:016x}",
    # A full sha256 fingerprint, 64 hex characters.
    "fingerprint": lambda index: f"{index:064x}",
}


def machine() -> dict[str, Any]:
    """Python and CPU facts, so numbers from different machines are not compared blindly."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": len(os.sched_getaffinity(0)),
    }


def stepped_clock() -> tuple[Callable[[], float], list[float]]:
    """A clock as cheap as time.monotonic (all C calls) whose value the bench sets."""
    now = [0.0]
    return functools.partial(now.__getitem__, 0), now


def bytes_per_key(count: int, key_format: Callable[[int], Hashable]) -> tuple[float, float, float]:
    """Cache bytes per key, key string included: seen once, then with a repeat pending each;
    and the key string's own share."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache = dedup.DedupCache(window_seconds=WINDOW, max_size=count)
    for index in range(count):
        cache.observe(key_format(index), now_wall=WALL, payload=PAYLOAD)
    once = tracemalloc.get_traced_memory()[0] - before
    for index in range(count):
        cache.observe(key_format(index), now_wall=WALL, payload=PAYLOAD)
    pending = tracemalloc.get_traced_memory()[0] - before
    del cache
    gc.collect()
    keys: list[Hashable] = [None] * count  # allocated before measuring: only the keys count
    before = tracemalloc.get_traced_memory()[0]
    for index in range(count):
        keys[index] = key_format(index)
    strings = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return once / count, pending / count, strings / count


def timings(count: int, repeat: int) -> dict[str, float]:
    """observe() rates for FIRST inserts, REPEAT hits and FIRST inserts into a full cache (each
    evicts a key), and due_flushes() cost per key."""
    keys = [("falco", falco_identity(index)) for index in range(count)]
    newcomers = [("falco", falco_identity(count + index)) for index in range(count)]
    result: dict[str, list[float]] = {
        "first": [],
        "repeat_new": [],
        "repeat": [],
        "evicting": [],
        "flush": [],
    }
    for _ in range(repeat):
        clock, now = stepped_clock()
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=count, clock=clock)
        observe = cache.observe
        for label in ("first", "repeat_new", "repeat"):
            gc.collect()
            started = time.perf_counter()
            for key in keys:
                observe(key, now_wall=WALL, payload=PAYLOAD)
            result[label].append(count / (time.perf_counter() - started))
        gc.collect()
        started = time.perf_counter()
        for key in newcomers:  # the cache is full: each evicts the least recent key
            observe(key, now_wall=WALL, payload=PAYLOAD)
        result["evicting"].append(count / (time.perf_counter() - started))
        for key in newcomers:  # the newcomers get a repeat pending, like the first keys had
            observe(key, now_wall=WALL, payload=PAYLOAD)
        cache.due_flushes()  # the evicted keys' counts, so that only due keys are timed below
        now[0] += WINDOW * 2
        gc.collect()
        started = time.perf_counter()
        flushed = len(cache.due_flushes())
        result["flush"].append((time.perf_counter() - started) / flushed * 1e9)
        del cache
    return {
        "first_per_s": max(result["first"]),
        "repeat_new_per_s": max(result["repeat_new"]),
        "repeat_per_s": max(result["repeat"]),
        "evicting_per_s": max(result["evicting"]),
        "flush_ns_per_key": min(result["flush"]),
    }


def flood(
    size: int = 10_000, one_offs_per_second: int = 4_000, windows: int = 10
) -> dict[str, float]:
    """Writes per window for a finding that repeats every second while one-off findings, at a
    rate that turns the whole cache over every few seconds, keep it full (shipped DEDUP_MAX_SIZE
    and window, stepped clock)."""
    clock, now = stepped_clock()
    cache = dedup.DedupCache(window_seconds=WINDOW, max_size=size, clock=clock)
    observe = cache.observe
    fresh = 0
    for fresh in range(size):
        observe(f"falco-{fresh:016x}", now_wall=WALL, payload=PAYLOAD)
    writes = 0
    for second in range(int(WINDOW) * windows):
        now[0] = float(second)
        if observe("hot", now_wall=WALL, payload=PAYLOAD) is dedup.Decision.FIRST:
            writes += 1
        writes += sum(flush.key == "hot" for flush in cache.due_flushes())
        for _ in range(one_offs_per_second):
            fresh += 1
            observe(f"falco-{fresh:016x}", now_wall=WALL, payload=PAYLOAD)
    return {
        "flood_cache_keys": size,
        "flood_one_offs_per_s": one_offs_per_second,
        "flood_windows": windows,
        "flood_hot_writes_per_window": writes / windows,
    }


def falco_identity(index: int) -> tuple[str, ...]:
    """A Falco finding's identity as the mapping builds it: 16 strings, most of them empty."""
    return ("Terminal shell in container", "bench", f"pod-{index}", "", "c1", *("",) * 11)


def measure(count: int, repeat: int) -> dict[str, float]:
    row: dict[str, float] = {"keys": count}
    # What the daemon keys on: (source, identity). The identity is the finding's own, which the
    # cache keeps as the key's payload anyway, so it is built before measuring: the key's own
    # cost is the pair.
    identities = [falco_identity(index) for index in range(count)]
    formats = {**KEY_FORMATS, "identity": lambda index: ("falco", identities[index])}
    for name, key_format in formats.items():
        once, pending, strings = bytes_per_key(count, key_format)
        row[f"bytes_per_key_{name}"] = once
        row[f"bytes_per_pending_key_{name}"] = pending
        row[f"key_string_bytes_{name}"] = strings
    row.update(timings(count, repeat))
    return row


def markdown(facts: dict[str, Any], rows: list[dict[str, float]]) -> str:
    lines = [
        f"Python {facts['python']} ({facts['implementation']}), {facts['cpu']}, "
        f"{facts['cpus']} CPUs, {facts['platform']}",
        "",
        "| keys | B/key ((source, identity), as the daemon) | of which key | pending "
        "| B/key (22-char name) | of which key | pending | B/key (64-hex key) "
        "| of which key | pending | FIRST observe/s | REPEAT observe/s (1st) "
        "| REPEAT observe/s | FIRST observe/s (full) | due_flushes ns/key |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['keys']:,} | {row['bytes_per_key_identity']:.0f} "
            f"| {row['key_string_bytes_identity']:.0f} "
            f"| {row['bytes_per_pending_key_identity']:.0f} | {row['bytes_per_key_name']:.0f} "
            f"| {row['key_string_bytes_name']:.0f} | {row['bytes_per_pending_key_name']:.0f} "
            f"| {row['bytes_per_key_fingerprint']:.0f} "
            f"| {row['key_string_bytes_fingerprint']:.0f} "
            f"| {row['bytes_per_pending_key_fingerprint']:.0f} | {row['first_per_s']:,.0f} "
            f"| {row['repeat_new_per_s']:,.0f} | {row['repeat_per_s']:,.0f} "
            f"| {row['evicting_per_s']:,.0f} | {row['flush_ns_per_key']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="timing runs; the best counts")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    args = parser.parse_args(argv)
    facts = machine()
    rows = [measure(count, args.repeat) for count in args.keys]
    flooded = flood()
    print(markdown(facts, rows))
    print(
        f"\nFlood: a finding repeating every second costs "
        f"{flooded['flood_hot_writes_per_window']:.1f} writes per {WINDOW:.0f} s window while "
        f"{flooded['flood_one_offs_per_s']:,} one-offs/s keep a {flooded['flood_cache_keys']:,}-key "
        f"cache full ({flooded['flood_windows']} windows)."
    )
    print(
        "\nB/key: a cache filled with distinct keys, tracemalloc delta / keys, the shared payload "
        "excluded; 'pending': after one repeat of every key (a pending counter each; a per-key "
        "now_wall datetime would add 48 B). REPEAT (1st) is a key's first repeat, which "
        "allocates that counter. FIRST (full) inserts into a full cache, so each evicts a key. "
        "due_flushes ns/key is per key flushed, with every key due."
    )
    if args.json:
        document = {"machine": facts, "results": rows, "flood": flooded}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
