"""The Markdown table `bench.run` prints: each point, its measured value, target and verdict."""

from __future__ import annotations

from typing import Any

from bench.points import peer


class Rows:
    """Table rows; `add` formats a number and judges it against its target."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(
        self,
        point: str,
        measured: float | None,
        unit: str,
        target: str,
        met: bool | None,
        *,
        digits: int | None = None,
    ) -> None:
        if digits is None:
            digits = 2 if not unit else 1
        shown = "n/a" if measured is None else f"{measured:,.{digits}f} {unit}".strip()
        self.text(point, shown, target, "—" if met is None else ("met" if met else "NOT met"))

    def text(self, point: str, measured: str, target: str, verdict: str) -> None:
        self.rows.append((point, measured, target, verdict))


def table(results: dict[str, Any]) -> str:
    """Markdown: point, measured, target, met; then the machine and the run's conditions."""
    rows = Rows()
    intake_rows(rows, results.get("intake", {}))
    peer_rows(rows, results.get("peer"), results.get("intake", {}))
    write_rows(rows, results.get("writes"))
    latency_rows(rows, results.get("latency"), results.get("soak"))
    dedup_and_sync_rows(rows, results.get("dedup", {}), results.get("sync", {}))
    failover_rows(rows, results.get("failover"))
    if "idle" in results:
        rss = results["idle"]["idle_rss_mib"]
        rows.add("Idle RSS", rss, "MiB", "<= 60 MiB", rss <= 60)
    lines = ["| point | measured | target | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows.rows]
    m = results["machine"]
    lines.append("")
    lines.append(
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu_model']}; Python {m['python']}; "
        f"Kubernetes {m.get('kubernetes')}, etcd {m.get('etcd')}; commit {m['commit']}; {m['date']}"
        f"{'; quick mode' if results.get('quick') else ''}."
    )
    return "\n".join(lines)


def intake_rows(rows: Rows, intake_results: dict[str, Any]) -> None:
    for key, label, target in (
        ("falco_repeats", "Falco repeats, events/s (p99 < 50 ms, < 0.1 % non-2xx)", 15000.0),
        ("falco_unique", "Falco unique findings, events/s", None),
        (
            "audit_batches",
            "Audit in 400-event EventLists, every event a finding, events/s",
            100000.0,
        ),
        ("audit_mix", "Audit in 400-event EventLists, 1 in 20 a finding, events/s", 100000.0),
    ):
        if key not in intake_results:
            continue
        best = intake_results[key]["best"]
        first = intake_results[key]["points"][0]
        wanted = f">= {target:,.0f}" if target else "—"
        if best is None:  # not even the lowest rate passed: say what it measured
            measured = (
                f"none passed (at {first['target_rate']:,.0f} req/s: p99 {first['p99_ms']:.1f} ms,"
                f" {first['events_per_second']:,.0f} events/s)"
            )
            rows.text(label, measured, wanted, "NOT met" if target else "—")
            continue
        value = best["events_per_second"]
        rows.add(label, value, "", wanted, value >= target if target else None, digits=0)
        cost = best.get("server_cpu_us_per_event")
        if cost is not None:
            rows.add(f"{label.split(',')[0]}: server CPU per event", cost, "µs", "—", None)
    for key, label in (
        ("audit_mix_saturated", "Audit, 1 in 20 a finding"),
        ("audit_saturated", "Audit, every event a finding"),
    ):
        if key in intake_results:
            point = intake_results[key]
            rows.add(
                f"{label}, offered {point['target_rate'] * 400:,.0f}/s: achieved"
                f" (p99 {point['p99_ms']:,.0f} ms)",
                point["events_per_second"],
                "events/s",
                "—",
                None,
                digits=0,
            )
    if "falco_repeats_at_5000" in intake_results:
        point = intake_results["falco_repeats_at_5000"]
        rows.add(
            f"Falco repeats p99 at 5,000/s (achieved {point['achieved_rps']:,.0f}/s)",
            point["p99_ms"],
            "ms",
            "<= 20 ms",
            point["p99_ms"] <= 20,
        )


def peer_rows(rows: Rows, peer_result: dict[str, Any] | None, intake: dict[str, Any]) -> None:
    if peer_result is None:
        return
    if "unavailable" in peer_result:
        rows.text("falcosidekick, Falco repeats, events/s", "unavailable", "—", "—")
        rows.text("Falco repeats / falcosidekick", "unavailable", ">= 0.5", "not measured")
        return
    best = peer_result["best"]
    bound = "" if peer_result["limit"] == "server" else " (lower bound)"
    rows.add(
        f"falcosidekick {peer_result['version']}, Falco repeats, events/s{bound}",
        best["events_per_second"] if best else None,
        "",
        "—",
        None,
    )
    share = peer.ratio(intake.get("falco_repeats", {}), peer_result)
    rows.add(
        "Falco repeats / falcosidekick",
        share,
        "",
        ">= 0.5",
        None if share is None else share >= 0.5,
    )


def write_rows(rows: Rows, w: dict[str, Any] | None) -> None:
    if not w:
        return
    where = f"client on CPU {w['raw_client_cpu']}, as the daemon"
    median = f"median of {w['rounds']} rounds" if w.get("rounds", 1) > 1 else "one round"
    rows.add(
        f"Raw API create rate of the same objects ({w.get('object_bytes', '?')} bytes of JSON each; "
        f"concurrency 8, {where}, {median})",
        w["raw_create_per_second"],
        "obj/s",
        "—",
        None,
    )
    rows.add(
        "Raw API create rate, client on both cores",
        w["raw_create_unpinned_per_second"],
        "obj/s",
        "—",
        None,
    )
    rows.add(
        f"Unique Observations through zen-watcher, shipped defaults ({median})",
        w["zen_watcher_per_second"],
        "obj/s",
        "—",
        None,
    )
    ratio = w["ratio_vs_raw_create"]
    rows.add("Write path / raw create (same run)", ratio, "", ">= 0.9", ratio >= 0.9)
    for key, offered in (("sustained_200", 200), ("burst_300", 300)):
        point = w.get(key)
        if not point:
            continue
        met = (
            point["refused"] == 0
            and point["created"] == point["accepted"]
            and point["all_written_in_seconds"] <= point["seconds"] + 2.0
        )
        rows.add(
            f"{offered}/s distinct alerts for {point['seconds']:.0f} s at the shipped defaults:"
            f" written within (s), {point['refused']} refused",
            point["all_written_in_seconds"],
            "s",
            f"<= {point['seconds'] + 2:.0f} s, none refused",
            met,
        )


def latency_rows(rows: Rows, latency: dict[str, Any] | None, soaked: dict[str, Any] | None) -> None:
    for point in (latency or {}).get("points", []):
        share = round(point["fraction"] * 100)
        rows.add(
            f"POST → watch ADDED p99 at {share} % of write capacity"
            f" ({point['achieved_rate']:.0f}/s, {point['lost']} lost)",
            point["p99_ms"],
            "ms",
            "<= 100 ms, none lost" if "met" in point else "—",
            point.get("met"),
        )
    if soaked:
        minutes = soaked["duration_s"] / 60
        rows.add(
            f"RSS during a {minutes:.0f}-minute soak at 50 %, max",
            soaked["max_rss_mib"],
            "MiB",
            "—",
            None,
        )
        slope = soaked["slope_mib_per_min_second_half"]
        rows.add(
            "RSS slope over the soak's second half",
            slope,
            "MiB/min",
            "<= 0.1 MiB/min",
            slope <= 0.1,
        )


def dedup_and_sync_rows(rows: Rows, dedup: dict[str, Any], sync: dict[str, Any]) -> None:
    for keys, d in dedup.items():
        per_key = d.get("bytes_per_key_identity", d["bytes_per_key_name"])
        rows.add(
            f"Dedup bytes per key at {int(keys):,} keys", per_key, "B", "<= 200 B", per_key <= 200
        )
        rows.add(
            f"Dedup repeat observes/s at {int(keys):,} keys", d["repeat_per_s"], "ops/s", "—", None
        )
    for name, s in sync.items():
        overrides = ", ".join(f"{key}={value}" for key, value in s.get("overrides", {}).items())
        rows.add(
            f"Sync {s['reports']} {name} ({s['findings']:,} findings"
            + (f"; {overrides}" if overrides else "")
            + ")",
            s["seconds"],
            "s",
            "—",
            None,
        )
        rows.add(f"Sync {name} findings/s", s["findings_per_second"], "/s", "—", None)
        if "ratio_vs_raw_create" in s:
            rows.add(
                f"Sync {name}: raw create of as many Observations (before/after, mean)",
                s["raw_create_per_second"],
                "/s",
                "—",
                None,
            )
            ratio = s["ratio_vs_raw_create"]
            rows.add(f"Sync {name} / raw create, start-up included", ratio, "", "—", None)
        if "writing_ratio_vs_raw_create" in s:
            ratio = s["writing_ratio_vs_raw_create"]
            rows.add(
                f"Sync {name} / raw create, from the first write", ratio, "", ">= 0.9", ratio >= 0.9
            )
        if "daemon_cpu_fraction" in s:
            share = s["daemon_cpu_fraction"]
            rows.add(
                f"Sync {name}: daemon CPU, share of its core",
                share,
                "",
                "< 0.9 (API-bound)",
                share < 0.9,
            )
        rows.add(
            f"Sync {name} peak RSS", s["peak_rss_mib"], "MiB", "< 150 MiB", s["peak_rss_mib"] < 150
        )


def failover_rows(rows: Rows, f: dict[str, Any] | None) -> None:
    if not f:
        return
    for kind, label, limit in (("graceful", "Graceful", 3), ("sigkill", "SIGKILL", 17)):
        rows.add(f"{label} failover, median of {f['trials']}", f[kind]["median_s"], "s", "—", None)
        rows.add(
            f"{label} failover, max of {f['trials']}",
            f[kind]["max_s"],
            "s",
            f"<= {limit} s",
            f[kind]["max_s"] <= limit,
        )
