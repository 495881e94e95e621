"""The webhook intake's own cost, as ratios measured in one run.

zen-watcher (shipped defaults; only the webhook token is set, as every deployment must) against
a bare aiohttp + uvloop handler (`bench.points.baseline`'s application) on the same core (CPU 0),
under the same open-loop generator (CPU 1), held to the same pass rule (p99 < 50 ms, < 0.1 %
non-2xx, `bench.load.capacity`):

- Falco repeats: one alert per request, the same alert every time; the bare handler parses it
  and hashes two fields. falcosidekick joins when `bench.points.peer` finds it in its cache.
- Audit, 1 event in 20 a finding: 400-event EventLists; the bare handler parses each list with
  orjson and reads every event's verb and resource.

The servers climb one ladder together, rate by rate (each rate about 10 % above the last), so
each step is measured for every server within the same minute. A failing point is tried once
more (a shared host's neighbours can fail any 5 s point), a step fails when both tries do, a
server leaves the ladder after two failing steps in a row. Then, since steps 10 % apart would
leave each best up to 10 % low, every server tries the rates a quarter, half and three quarters
of a step above its highest passing step, until one fails. Its best is its highest passing
rate. A server's CPU per request at a rate every server passes is printed beside it: the
steadier of the two measures. Beside each of zen-watcher's points: how many of its event
loop's wake-ups (`zen_watcher_event_loop_lag_seconds`, ten a second) came more than 25, 50
and 100 ms late, so a point failed by a stall is told from one failed by the load.

    python -m bench.points.intake_ratio [--only falco|audit] [--duration S] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.load.capacity import LoadTarget, load_point
from bench.load.common import DAEMON_CPU, TOKEN, control_plane, daemon, machine_facts
from bench.points import peer
from bench.points.baseline import BareServer
from tests.harness.controlplane.controlplane import free_port
from tests.harness.daemon_process import DaemonProcess

STEP = 1.1  # each rate of the ladder is this much above the last
FAILURES_TO_LEAVE = 2  # failing steps in a row that take a server off the ladder
REFINE_FRACTIONS = (0.25, 0.5, 0.75)  # of a step, tried above a server's best step
FALCO_LADDER = (2000.0, 40000.0)  # requests/s, one alert each
AUDIT_LADDER = (20.0, 1000.0)  # requests/s of 400-event EventLists
FALCO_CPU_RATE = 2000.0  # every server passes this; CPU per request is compared here
AUDIT_CPU_RATE = 20.0
LOOP_LAG = "zen_watcher_event_loop_lag_seconds_bucket"


def ladder(low: float, high: float) -> list[float]:
    rates: list[float] = []
    rate = low
    while rate <= high:
        rates.append(round(rate))
        rate *= STEP
    return rates


@contextlib.contextmanager
def bare_server() -> Iterator[BareServer]:
    """The baseline's aiohttp application, pinned to the daemon's core."""
    port = free_port()
    command = ["taskset", "-c", DAEMON_CPU, sys.executable, "-m", "bench.points.baseline"]
    process = subprocess.Popen([*command, "--serve", str(port)])
    try:
        time.sleep(2)
        yield BareServer(webhook_port=port, process=process)
    finally:
        process.terminate()
        process.wait()


def climb(
    targets: dict[str, tuple[LoadTarget, str]], *, kind: str, rates: list[float], duration: float
) -> dict[str, dict[str, Any]]:
    """Every target up the same ladder, interleaved, then each best refined; per target its
    points and best."""
    results: dict[str, dict[str, Any]] = {name: {"points": [], "best": None} for name in targets}
    failures = dict.fromkeys(targets, 0)
    best_step: dict[str, float] = {}  # the highest ladder rate each target passed
    for rate in rates:
        climbing = [name for name in targets if failures[name] < FAILURES_TO_LEAVE]
        if not climbing:
            break
        for name in climbing:
            if try_rate(
                targets[name], results[name], name=name, kind=kind, rate=rate, duration=duration
            ):
                failures[name] = 0
                best_step[name] = rate
            else:
                failures[name] += 1
    # Steps 10 % apart leave a best up to 10 % under the rate the server can hold, which moves
    # a ratio of two bests by up to 10 % either way: between its best step and the next one,
    # each server tries the rates a quarter step apart, interleaved, until one fails.
    refining = {name: step for name, step in best_step.items() if step < rates[-1]}
    for fraction in REFINE_FRACTIONS:
        for name, step in list(refining.items()):
            rate = round(step * (1 + (STEP - 1) * fraction))
            if not try_rate(
                targets[name], results[name], name=name, kind=kind, rate=rate, duration=duration
            ):
                del refining[name]
    return results


def try_rate(
    target: tuple[LoadTarget, str],
    result: dict[str, Any],
    *,
    name: str,
    kind: str,
    rate: float,
    duration: float,
) -> bool:
    """One point at `rate` (tried once more if it fails), recorded in `result`; passed or not."""
    server, path = target
    point = lagged_point(server, kind=kind, rate=rate, duration=duration, path=path)
    if not point["passed"]:
        # One more try: on a shared host a 5 s point can fail to a neighbour's burst.
        result["points"].append(point)
        point = lagged_point(server, kind=kind, rate=rate, duration=duration, path=path)
    result["points"].append(point)
    lag = point.get("loop_lag")
    print(
        f"  {kind:12} {name:14} {rate:>7.0f} req/s: events/s {point['events_per_second']:>9.0f} "
        f"p99 {point['p99_ms']:7.1f} ms non-2xx {point['non2xx_fraction']:.4f} "
        f"server {point['server_cpu_us_per_event']:7.1f} µs/event "
        f"{'pass' if point['passed'] else 'FAIL'}"
        f"{' (loadgen saturated)' if point['loadgen_saturated'] else ''}"
        + (
            f" | loop lag > 25/50/100 ms: {lag['over_25ms']:.0f}/{lag['over_50ms']:.0f}/"
            f"{lag['over_100ms']:.0f} of {lag['wakeups']:.0f}, all <= {lag['all_within_s']} s"
            if lag
            else ""
        ),
        flush=True,
    )
    if point["passed"]:
        best = result["best"]
        if best is None or point["events_per_second"] > best["events_per_second"]:
            result["best"] = point
    return bool(point["passed"])


def lagged_point(
    server: LoadTarget, *, kind: str, rate: float, duration: float, path: str
) -> dict[str, Any]:
    """`load_point`, plus, for zen-watcher, how late its event loop ran during the point (its
    `zen_watcher_event_loop_lag_seconds`, read before and after): a point whose p99 fails at
    a CPU share the bare handler holds may have met a stall rather than the load."""
    before = loop_lag_buckets(server)
    point = load_point(server, kind=kind, rate=rate, duration=duration, path=path)
    if before is not None:
        point["loop_lag"] = lag_between(before, loop_lag_buckets(server) or {})
    return point


def loop_lag_buckets(server: LoadTarget) -> dict[float, float] | None:
    """zen-watcher's loop-lag histogram, cumulative count by upper bound; None for the peers."""
    if not isinstance(server, DaemonProcess):
        return None
    buckets: dict[float, float] = {}
    for key, value in server.metrics().items():
        if key.startswith(LOOP_LAG + "{"):
            buckets[float(key.split('le="', 1)[1].split('"', 1)[0])] = value
    return buckets


def lag_between(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """The wake-ups between two readings: how many, how many later than 25, 50 and 100 ms, and
    the lowest bucket bound that holds them all."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    wakeups = counts.get(math.inf, 0.0)
    return {
        "wakeups": wakeups,
        **{f"over_{round(b * 1000)}ms": wakeups - counts.get(b, 0.0) for b in (0.025, 0.05, 0.1)},
        "all_within_s": min((b for b, count in counts.items() if count >= wakeups), default=0.0),
    }


def cpu_points(
    targets: dict[str, tuple[LoadTarget, str]], *, kind: str, rate: float, duration: float
) -> dict[str, float]:
    """Server CPU µs per event at one rate, every target, three rounds alternating: medians."""
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(3):
        for name, (target, path) in targets.items():
            point = load_point(target, kind=kind, rate=rate, duration=duration, path=path)
            samples[name].append(point["server_cpu_us_per_event"])
    return {name: sorted(values)[1] for name, values in samples.items()}


def best_rate(result: dict[str, Any]) -> float:
    best = result["best"]
    return float(best["events_per_second"]) if best else 0.0


INTAKES = ("falco", "audit")


def measure(duration: float, intakes: tuple[str, ...] = INTAKES) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_facts(), "duration_seconds": duration}
    results["daemon_env"] = {"WEBHOOK_AUTH_TOKEN": "(set)"}
    ratios: dict[str, float | None] = {}
    results["ratios"] = ratios
    with contextlib.ExitStack() as stack:
        running = stack.enter_context(control_plane())
        zen = stack.enter_context(daemon(running, "bench-ratio", WEBHOOK_AUTH_TOKEN=TOKEN))
        bare = stack.enter_context(bare_server())
        if "falco" in intakes:
            falco_targets: dict[str, tuple[LoadTarget, str]] = {
                "bare aiohttp": (bare, "/falco/webhook"),
                "zen-watcher": (zen, "/falco/webhook"),
            }
            try:
                binary = peer.build_falcosidekick()
                falcosidekick = stack.enter_context(peer.falcosidekick(binary))
                falco_targets["falcosidekick"] = (falcosidekick, "/")
            except peer.PeerError as error:
                print(f"falcosidekick left out: {error}", flush=True)
            results["falco_cpu_us"] = cpu_points(
                falco_targets, kind="falco-repeat", rate=FALCO_CPU_RATE, duration=duration
            )
            falco = results["falco"] = climb(
                falco_targets, kind="falco-repeat", rates=ladder(*FALCO_LADDER), duration=duration
            )
            ratios["falco_repeats_over_bare"] = ratio(falco, "zen-watcher", "bare aiohttp")
            if "falcosidekick" in falco:
                ratios["falco_repeats_over_falcosidekick"] = ratio(
                    falco, "zen-watcher", "falcosidekick"
                )
        if "audit" in intakes:
            audit_targets: dict[str, tuple[LoadTarget, str]] = {
                "bare aiohttp": (bare, "/audit/webhook"),
                "zen-watcher": (zen, "/audit/webhook"),
            }
            results["audit_cpu_us"] = cpu_points(
                audit_targets, kind="audit-mix", rate=AUDIT_CPU_RATE, duration=duration
            )
            audit = results["audit_mix"] = climb(
                audit_targets, kind="audit-mix", rates=ladder(*AUDIT_LADDER), duration=duration
            )
            ratios["audit_mix_over_bare_parse"] = ratio(audit, "zen-watcher", "bare aiohttp")
    return results


def ratio(climbed: dict[str, dict[str, Any]], server: str, anchor: str) -> float | None:
    """`server`'s best passing rate over `anchor`'s (None when the anchor passed no rate)."""
    below = best_rate(climbed[anchor])
    return round(best_rate(climbed[server]) / below, 3) if below else None


def table(results: dict[str, Any]) -> str:
    lines = [
        "| intake | server | best passing events/s | p99 there | CPU µs per event at the fixed rate |",
        "|---|---|---:|---:|---:|",
    ]
    for key, label, cpu_key, rate in (
        ("falco", "Falco repeats", "falco_cpu_us", FALCO_CPU_RATE),
        ("audit_mix", "Audit, 1 in 20 a finding", "audit_cpu_us", AUDIT_CPU_RATE * 400),
    ):
        for name, result in results.get(key, {}).items():
            best = result["best"]
            passing = f"{best['events_per_second']:,.0f}" if best else "none"
            p99 = f"{best['p99_ms']:.1f} ms" if best else "—"
            cpu = results[cpu_key].get(name)
            cpu_text = "—" if cpu is None else f"{cpu:.1f} (at {rate:,.0f} events/s)"
            lines.append(f"| {label} | {name} | {passing} | {p99} | {cpu_text} |")
    ratios = results["ratios"]
    lines.append("")
    for key, text in (
        (
            "falco_repeats_over_bare",
            "Falco repeats, zen-watcher / bare aiohttp: {} (target >= 0.8)",
        ),
        ("falco_repeats_over_falcosidekick", "Falco repeats, zen-watcher / falcosidekick: {}"),
        (
            "audit_mix_over_bare_parse",
            "Audit 1-in-20, zen-watcher / bare parse: {} (target >= 0.5)",
        ),
    ):
        if key in ratios:
            lines.append(text.format(ratios[key]))
    machine = results["machine"]
    lines.append(
        f"Machine: {machine['cores']} cores, {machine['cpu_model']}, Python {machine['python']}, "
        f"commit {machine['commit']}, {machine['date']}; points of {results['duration_seconds']} s; "
        "zen-watcher at the shipped defaults with WEBHOOK_AUTH_TOKEN set."
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.points.intake_ratio",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load point")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument(
        "--only", choices=INTAKES, help="measure one intake (default: both, Falco first)"
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the control plane and daemons are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    results = measure(args.duration, (args.only,) if args.only else INTAKES)
    print(table(results))
    if args.json:
        output = Path(args.json)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
