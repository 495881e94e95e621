"""Where the intake's time goes, without HTTP: per-event cost of EventIntake.process for repeated
Falco alerts and 400-event audit lists (every event a finding, 1 in 20, none), what parsing and
reading one routine audit event cost of that, what a filter `expression` adds (none, a simple and
a ten-clause one), then cProfile's top functions.

    python -m bench.profile.intake
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from collections.abc import Callable

import orjson
from prometheus_client import CollectorRegistry

from bench.load.loadgen import audit_list, falco_alert, routine_audit_event
from tests.harness import payloads
from zenwatcher.filters import rules
from zenwatcher.filters.state import FilterState
from zenwatcher.mapping import audit, falco
from zenwatcher.mapping.audit import request as audit_request
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.dedup import DedupCache
from zenwatcher.pipeline.intake import EventIntake
from zenwatcher.sources import push_source

# Both true for the benchmark's alert, so every clause runs (an AND stops at its first false one).
SIMPLE_EXPRESSION = "spec.severity >= 'medium'"
TEN_CLAUSES = (
    "spec.severity >= 'medium' AND spec.source = 'falco' AND is_security"
    " AND spec.eventType IN ['runtime_detection', 'pod_exec']"
    " AND spec.resource.namespace NOT IN ['kube-system', 'kube-public']"
    " AND spec.resource.kind = 'Pod' AND spec.resource.name STARTS_WITH 'pod-'"
    " AND spec.details.rule CONTAINS 'shell' AND spec.details.outputFields.k8s.ns.name EXISTS"
    " AND NOT (is_critical OR spec.title ENDS_WITH 'ignored')"
)


def intake(source: str, expression: str = "") -> EventIntake:
    """The source's intake as the daemon wires it: its mapper, its repeat key."""
    jobs: list[object] = []
    config = rules.parse_filter_config(orjson.dumps({"expression": expression}))
    return EventIntake(
        source=source,
        map_event=push_source(source).new_mapper(),
        filters=FilterState(config),
        dedup=DedupCache(window_seconds=60, max_size=10000),
        accounting=Accounting(Metrics(CollectorRegistry())),
        enqueue=jobs.append,
        default_namespace="zen-system",
        repeat_key=push_source(source).repeat_key,  # as the daemon wires it
    )


def per_event_us(run: Callable[[], None], events: int) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / events * 1e6


def expression_cost(rounds: int = 20000, repeats: int = 7) -> None:
    """ns per event with no, a simple and a ten-clause expression: the whole intake of a
    repeated Falco alert, and the filter verdict alone on an already mapped finding. The three
    take turns and each keeps its best of `repeats`, so a busy machine skews them alike."""
    alert = falco_alert(0)
    finding = falco.map_falco_alert(orjson.loads(alert))
    cases = (("none", ""), ("simple", SIMPLE_EXPRESSION), ("ten clauses", TEN_CLAUSES))
    runs: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}
    for label, text in cases:
        falco_intake = intake("falco", text)
        config = rules.parse_filter_config(orjson.dumps({"expression": text}))
        assert rules.evaluate(config, finding) is None  # true: every clause evaluated

        def through_intake(target: EventIntake = falco_intake) -> None:
            for _ in range(rounds):
                target.process(falco.split_falco_body(orjson.loads(alert)))

        def verdict_only(config: rules.FilterConfig = config) -> None:
            for _ in range(rounds):
                rules.evaluate(config, finding)

        runs[label] = (through_intake, verdict_only)
    best = {label: [float("inf"), float("inf")] for label in runs}
    for _ in range(repeats):
        for label, pair in runs.items():
            for index, run in enumerate(pair):
                best[label][index] = min(best[label][index], per_event_us(run, rounds) * 1000)
    for label, (intake_ns, verdict_ns) in best.items():
        print(
            f"expression {label}: falco repeat {intake_ns:,.0f} ns per event, "
            f"filter verdict alone {verdict_ns:,.0f} ns per event"
        )


def main() -> int:
    falco_intake, audit_intake = (
        intake("falco"),
        intake("audit"),
    )
    alert = falco_alert(0)
    events = payloads.audit_events()
    batch = payloads.event_list([events[i % len(events)] for i in range(400)])
    mix = audit_list(400, finding_every=20)
    routine_events = [routine_audit_event(i) for i in range(400)]
    routine = payloads.event_list(routine_events)

    def falco_run() -> None:
        for _ in range(20000):
            falco_intake.process(falco.split_falco_body(orjson.loads(alert)))

    def audit_lists(body: bytes) -> Callable[[], None]:
        def run() -> None:
            for _ in range(50):
                audit_intake.process(audit.split_audit_body(orjson.loads(body)))

        return run

    def parse_only() -> None:
        for _ in range(50):
            orjson.loads(routine)

    def read_only() -> None:
        for _ in range(50):
            for event in routine_events:
                audit_request.triage_request(event)  # as the intake reads them

    audit_run = audit_lists(batch)
    print(f"falco repeat: {per_event_us(falco_run, 20000):.1f} us per event")
    print(f"audit (400-event lists): {per_event_us(audit_run, 20000):.1f} us per event")
    print(f"audit, 1 in 20 a finding: {per_event_us(audit_lists(mix), 20000):.1f} us per event")
    print(f"audit, routine requests: {per_event_us(audit_lists(routine), 20000):.1f} us per event")
    print(f"  of which parsing: {per_event_us(parse_only, 20000):.1f} us per event")
    print(f"  of which reading the fields: {per_event_us(read_only, 20000):.1f} us per event")
    expression_cost()
    for name, run in (("falco", falco_run), ("audit", audit_run)):
        profile = cProfile.Profile()
        profile.runcall(run)
        print(f"\n--- {name}: top functions by cumulative time ---")
        pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(12)
    return 0


if __name__ == "__main__":
    sys.exit(main())
