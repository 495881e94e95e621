"""Where the intake's time goes, without HTTP: cProfile of EventIntake.process for repeated
Falco alerts and 400-event audit lists, printing per-event cost and the top functions.

    python -m bench.profile_intake
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from bench.loadgen import falco_alert
from tests import payloads
from zenwatcher.mapping import audit, falco
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.dedup import DedupCache
from zenwatcher.pipeline.intake import EventIntake, FilterState


def intake(source: str, map_event: Callable[[Any], Any]) -> EventIntake:
    jobs: list[object] = []
    return EventIntake(
        source=source,
        map_event=map_event,
        filters=FilterState(),
        dedup=DedupCache(window_seconds=60, max_size=10000),
        accounting=Accounting(Metrics(CollectorRegistry())),
        enqueue=jobs.append,
        default_namespace="zen-system",
    )


def per_event_us(run: Callable[[], None], events: int) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / events * 1e6


def main() -> int:
    falco_intake, audit_intake = (
        intake("falco", falco.map_falco_alert),
        intake("audit", audit.map_audit_event),
    )
    alert = falco_alert(0)
    events = payloads.audit_events()
    batch = payloads.event_list([events[i % len(events)] for i in range(400)])

    def falco_run() -> None:
        for _ in range(20000):
            falco_intake.process(falco.split_falco_body(orjson.loads(alert)))

    def audit_run() -> None:
        for _ in range(50):
            audit_intake.process(audit.split_audit_body(orjson.loads(batch)))

    print(f"falco repeat: {per_event_us(falco_run, 20000):.1f} us per event")
    print(f"audit (400-event lists): {per_event_us(audit_run, 20000):.1f} us per event")
    for name, run in (("falco", falco_run), ("audit", audit_run)):
        profile = cProfile.Profile()
        profile.runcall(run)
        print(f"\n--- {name}: top functions by cumulative time ---")
        pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(12)
    return 0


if __name__ == "__main__":
    sys.exit(main())
