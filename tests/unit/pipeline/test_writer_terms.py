"""Report jobs of a leadership term that has ended are dropped and counted, never written.

The writer's client is absent on purpose: any API call would fail the test.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from tests.harness.writers import make_writer
from zenwatcher.finding import Category, Finding, Origin, Severity
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.jobs import OpenJob, ResolveJob, Term, outlived_its_term
from zenwatcher.pipeline.retrying import LEADERSHIP_LOST

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def finding() -> Finding:
    return Finding(
        source="kyverno",
        category=Category.COMPLIANCE,
        severity=Severity.MEDIUM,
        event_type="policy_violation",
        identity=("require-labels", "web"),
        origin=Origin(uid="u", key="k"),
    )


async def test_jobs_of_an_ended_term_are_dropped() -> None:
    metrics = Metrics(CollectorRegistry())
    writer = make_writer(None, metrics)
    term = Term()
    opening = OpenJob(finding=finding(), namespace="web", seen_at=NOW, term=term)
    resolving = ResolveJob(name="n", namespace="web", source="kyverno", resolved_at=NOW, term=term)
    assert not outlived_its_term(opening)
    term.ended = True

    await writer.write(opening)
    await writer.write(resolving)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"source": "kyverno", **labels})

    # The Open's event is in the failed bucket; the Resolve had no event of its own.
    assert 1 == sample("zen_watcher_events_total", bucket="failed", reason=LEADERSHIP_LOST)
    assert 2 == sample("zen_watcher_observations_create_errors_total", reason=LEADERSHIP_LOST)


def test_jobs_without_a_term_never_outlive_one() -> None:
    assert not outlived_its_term(OpenJob(finding=finding(), namespace="web", seen_at=NOW))


async def test_a_failed_open_is_reported_to_its_term() -> None:
    """An Open the writer gives up on is handed back to the term (its ledger forgets it)."""
    writer = make_writer(None, Metrics(CollectorRegistry()))  # its create fails, accounted
    failed: list[str] = []
    term = Term(open_failed=failed.append)
    job = OpenJob(finding=finding(), namespace="web", seen_at=NOW, term=term)
    await writer.write(job)
    assert [finding().name] == failed
