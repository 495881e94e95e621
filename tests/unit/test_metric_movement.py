"""The movement check itself: a family or documented value that stays at its start is named."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from tests.harness import metric_movement
from tests.harness.metric_movement import EVENTS, Expectation, MovementRecorder
from zenwatcher.metrics import Metrics


def exposition(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_a_fresh_registry_moved_nothing() -> None:
    """Every family and every expectation is reported before anything happened."""
    metrics = Metrics(CollectorRegistry())
    recorder = MovementRecorder()
    recorder.sample_text(exposition(metrics))
    families = metric_movement.family_names()
    expectations = metric_movement.every_expectation()
    problems = recorder.unmoved(expectations, families)
    assert len(families) + len(expectations) == len(problems)


def test_a_gauge_that_rose_and_fell_back_moved() -> None:
    metrics = Metrics(CollectorRegistry())
    recorder = MovementRecorder()
    metrics.queue_depth.set(3)
    recorder.sample_text(exposition(metrics))
    metrics.queue_depth.set(0)
    recorder.sample_text(exposition(metrics))
    assert ["zen_watcher_leader: no series moved"] == recorder.unmoved(
        [], ["zen_watcher_queue_depth", "zen_watcher_leader"]
    )


def test_a_preseeded_value_at_zero_is_named() -> None:
    """relists{reason="initial"} moved, relists{reason="gone"} did not."""
    metrics = Metrics(CollectorRegistry())
    metrics.relists.labels(resource="configmaps", reason="initial").inc()
    recorder = MovementRecorder()
    recorder.sample_text(exposition(metrics))
    wanted = [e for e in metric_movement.preseeded_expectations() if "relists" in e.family]
    problems = recorder.unmoved(wanted, [])
    assert any('reason="gone"' in problem for problem in problems)
    assert not any('reason="initial"' in problem for problem in problems)


def test_placeholder_values_match_by_prefix() -> None:
    """`http_<status>` in docs/design.md is met by http_422."""
    expectation = Expectation(EVENTS, (("bucket", "failed"), ("reason", "http_<status>")), "doc")
    assert expectation.met_by({"bucket": "failed", "reason": "http_422", "source": "falco"})
    assert not expectation.met_by({"bucket": "failed", "reason": "transport"})


def test_the_design_tables_are_read() -> None:
    """The bucket table's reasons and the families table's listed values are expectations."""
    found = {str(e) for e in metric_movement.documented_expectations()}
    assert any('reason="leadership_lost"' in text for text in found)
    assert any('zen_watcher_api_writes_total{outcome="conflict_or_missing"}' in t for t in found)
    assert any('zen_watcher_report_reconciles_total{outcome="rejected"}' in t for t in found)
