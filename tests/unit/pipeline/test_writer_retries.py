"""The writer's retry schedule against injected faults a real API server cannot be made to give
on demand: status patches that always answer 500 (a failing admission webhook), and a
leadership term that ends while a report job is being retried. A fake client stands in.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from tests.harness.writers import make_writer
from zenwatcher.finding import Category, Finding, Severity
from zenwatcher.kube import errors
from zenwatcher.metrics import Metrics
from zenwatcher.observation import WRITE_ID_ANNOTATION
from zenwatcher.pipeline.jobs import IncrementJob, ResolveJob, Term
from zenwatcher.pipeline.retrying import LEADERSHIP_LOST

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class StatusAlways500:
    """GETs answer; every status PATCH fails with a 500 (the server may or may not apply it)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"GET": 0, "PATCH": 0}

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls[method] += 1
        if method == "PATCH":
            raise errors.error_for(500, {"message": "failed calling webhook"})
        return {"metadata": {"resourceVersion": "7"}, "status": {"count": 3}, "spec": {}}


def finding() -> Finding:
    return Finding(
        source="falco",
        category=Category.SECURITY,
        severity=Severity.HIGH,
        event_type="runtime_detection",
        identity=("r", "x"),
    )


def create_errors(metrics: Metrics, source: str, reason: str) -> float | None:
    labels = {"source": source, "reason": reason}
    return metrics.registry.get_sample_value("zen_watcher_observations_create_errors_total", labels)


async def test_ambiguous_failures_use_the_whole_retry_budget() -> None:
    """Each failed patch is checked with a re-read, and the delays grow over one schedule until
    retry_for is spent; the failure is reported as the server's error, not as a conflict."""
    fake, metrics = StatusAlways500(), Metrics(CollectorRegistry())
    started = time.monotonic()
    job = IncrementJob(finding=finding(), namespace="ns", count_delta=5, last_seen=NOW)
    await make_writer(fake, metrics, retry_for=2.0).write(job)
    elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 2.5  # gives up when the next delay would pass retry_for
    assert fake.calls["PATCH"] < 10  # growing delays (0.2 s, 0.4 s, …), not a fixed short one
    assert 1 == create_errors(metrics, "falco", "http_500")
    assert create_errors(metrics, "falco", "conflict") is None


async def test_a_report_job_stops_retrying_when_its_term_ends() -> None:
    fake, metrics = StatusAlways500(), Metrics(CollectorRegistry())
    term = Term()
    job = ResolveJob(name="n", namespace="ns", source="kyverno", resolved_at=NOW, term=term)
    writing = asyncio.create_task(make_writer(fake, metrics, retry_for=60.0).write(job))
    await asyncio.sleep(0.3)
    term.ended = True
    await asyncio.wait_for(writing, timeout=15)
    assert 1 == create_errors(metrics, "kyverno", LEADERSHIP_LOST)


class RacedThenLost:
    """Version 1 holds count 3. Our patch (+1) loses its answer; meanwhile another writer, from
    the same version, wrote the same status (count 4) under its own write id. The next patch
    succeeds and is recorded."""

    def __init__(self) -> None:
        self.version, self.count, self.write_id = "1", 3, ""
        self.patched: list[dict[str, Any]] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if method == "PATCH":
            body = kwargs["body"]
            if not self.patched:
                self.patched.append(body)
                # The other writer's identical status lands; ours was refused (stale version),
                # but the answer never reached us.
                self.version, self.count, self.write_id = "2", 4, "the-other-writer"
                raise errors.TransportError("connection reset (injected)")
            self.patched.append(body)
            self.version, self.count = "3", body["status"]["count"]
            self.write_id = body["metadata"]["annotations"][WRITE_ID_ANNOTATION]
            return {"metadata": {"resourceVersion": self.version}}
        return {
            "metadata": {
                "resourceVersion": self.version,
                "annotations": {WRITE_ID_ANNOTATION: self.write_id},
            },
            "status": {"count": self.count, "lastSeen": "2026-01-01T00:00:00Z"},
            "spec": {},
        }


async def test_an_identical_status_from_another_writer_is_not_taken_for_ours() -> None:
    """Two writers add 1 to the same version; ours loses its answer. The re-read shows count 4,
    what we computed too, but under the other writer's id: ours was not applied, so it is
    written again on the new version (5), not lost."""
    fake, metrics = RacedThenLost(), Metrics(CollectorRegistry())
    job = IncrementJob(finding=finding(), namespace="ns", count_delta=1, last_seen=NOW)
    await make_writer(fake, metrics, retry_for=10.0).write(job)
    assert 2 == len(fake.patched)
    assert 5 == fake.count
    assert "2" == fake.patched[1]["metadata"]["resourceVersion"]
