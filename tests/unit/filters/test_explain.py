"""What `explain.why` says for each drop reason, and the daemon's sampled debug lines."""

from __future__ import annotations

import logging

import pytest
import structlog
from structlog.testing import capture_logs

from tests.harness.filter_cases import DROP_CASES, DropCase, finding, parse
from zenwatcher.filters import explain, rules
from zenwatcher.filters.droplog import DropLog
from zenwatcher.finding import Severity

# The value each reason's explanation must name, for the cases of filter_cases.DROP_CASES.
EXPECTED = {
    "expression_filtered": "clause spec.severity >= 'critical' with spec.severity = \"high\"",
    "source_disabled": "source falco disabled",
    "global_exclude_namespace": 'namespace "production" excluded',
    "global_include_namespace": 'namespace "production" not included',
    "include_severity": "severity high not in includeSeverity ['critical']",
    "min_severity": "severity high below minSeverity critical",
    "exclude_event_type": "event type runtime_detection excluded",
    "include_event_type": "event type runtime_detection not included",
    "exclude_namespace": 'namespace "production" excluded',
    "include_namespace": 'namespace "production" not included',
    "exclude_kind": 'kind "Pod" excluded',
    "include_kind": 'kind "Pod" not included',
    "exclude_category": "category security excluded",
    "include_category": "category security not included",
    "exclude_rule": 'rule "terminal shell in container" in excludeRules',
}


class TestWhy:
    def test_every_reason_is_explained(self) -> None:
        """Each drop reason has an expected explanation below."""
        assert rules.DROP_REASONS == set(EXPECTED)

    @pytest.mark.parametrize("case", DROP_CASES, ids=[case.reason for case in DROP_CASES])
    def test_names_the_value(self, case: DropCase) -> None:
        """The explanation names the finding's value that failed the rule."""
        config = parse(case.config)
        assert case.reason == rules.evaluate(config, case.finding)
        assert EXPECTED[case.reason] == explain.why(config, case.finding, case.reason)

    def test_expression_names_the_failing_clause_only(self) -> None:
        """Of an AND, the clause that was false, with the fields it read."""
        config = parse(
            {"expression": "is_security AND spec.resource.namespace NOT IN ['production']"}
        )
        why = explain.why(config, finding(), "expression_filtered")
        assert why == (
            "clause spec.resource.namespace NOT IN ['production'] "
            'with spec.resource.namespace = "production"'
        )


def debug_logging() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))


class FakeClock:
    """A monotonic clock the test moves (the sampling window is one second of it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drop_many(log: DropLog, count: int, reason: str = "min_severity") -> None:
    config = parse({"sources": {"falco": {"minSeverity": "CRITICAL"}}})
    for _ in range(count):
        log.dropped(config, finding(severity=Severity.LOW), reason)


class TestDropLog:
    def test_one_line_names_finding_reason_and_value(self) -> None:
        """At debug level a drop logs filter_dropped with name, reason and why."""
        debug_logging()
        with capture_logs() as lines:
            drop_many(DropLog(clock=FakeClock(), logger=structlog.get_logger()), 1)
        assert lines == [
            {
                "event": "filter_dropped",
                "log_level": "debug",
                "source": "falco",
                "name": finding().name,
                "reason": "min_severity",
                "why": "severity low below minSeverity critical",
                "suppressed": 0,
            }
        ]

    def test_a_flood_is_sampled_per_reason_per_second(self) -> None:
        """1000 drops in one second log 5 lines per reason; the next second's first line says
        how many were left out."""
        debug_logging()
        clock = FakeClock()
        log = DropLog(per_second=5, clock=clock, logger=structlog.get_logger())
        with capture_logs() as lines:
            drop_many(log, 1000)
            drop_many(log, 1000, reason="exclude_kind")
            assert 10 == len(lines)
            clock.now += 0.5  # the same second: still over
            drop_many(log, 10)
            assert 10 == len(lines)
            clock.now += 0.6
            drop_many(log, 1)
        last = lines[-1]
        assert (11, "min_severity", 1005) == (len(lines), last["reason"], last["suppressed"])

    def test_silent_below_debug(self) -> None:
        """At info level nothing is logged."""
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
        with capture_logs() as lines:
            drop_many(DropLog(clock=FakeClock(), logger=structlog.get_logger()), 100)
        assert [] == lines
