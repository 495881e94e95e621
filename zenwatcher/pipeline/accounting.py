"""Puts every event in exactly one bucket (docs/design.md §8) and keeps the original's metric names.

Label children are cached, because `Counter.labels()` on every event costs more than the
increment itself on the webhook hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from zenwatcher.metrics import Bucket, Metrics


class Accounting:
    """Counts arrivals and outcomes per source."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._child = lru_cache(maxsize=4096)(self._lookup)

    def received(self, source: str, count: int = 1) -> None:
        self._child("received", source, "", "").inc(count)

    def created(self, source: str, severity: str) -> None:
        self._child("bucket", source, Bucket.CREATED, "").inc()
        self._child("created", source, severity, "").inc()

    def updated(self, source: str, reason: str, *, events: int = 1) -> None:
        """A status write; `events` is how many arrivals it accounts for (0 for a flush)."""
        if events:
            self._child("bucket", source, Bucket.UPDATED, reason).inc(events)
        self._child("updated", source, reason, "").inc()

    def deduplicated(self, source: str, count: int = 1) -> None:
        self._child("bucket", source, Bucket.DEDUPLICATED, "").inc(count)
        self._child("deduped", source, "", "").inc(count)

    def filtered(self, source: str, reason: str, count: int = 1) -> None:
        self._child("bucket", source, Bucket.FILTERED, reason).inc(count)
        self._child("filtered", source, reason, "").inc(count)

    def rejected(self, source: str, reason: str, count: int = 1) -> None:
        self._child("bucket", source, Bucket.REJECTED, reason).inc(count)
        self._child("rejected", source, reason, "").inc(count)

    def failed(self, source: str, reason: str, *, events: int = 1) -> None:
        if events:
            self._child("bucket", source, Bucket.FAILED, reason).inc(events)
        self._child("create_errors", source, reason, "").inc()

    def over_budget(self, source: str, scope: str) -> None:
        """A new finding not written: the etcd budget of its `scope` had no room."""
        self._child("bucket", source, Bucket.OVER_BUDGET, scope).inc()

    def _lookup(self, kind: str, source: str, first: str, second: str) -> Any:
        metrics = self.metrics
        families: dict[str, Callable[[], Any]] = {
            "received": lambda: metrics.events_received.labels(source),
            "bucket": lambda: metrics.events.labels(source, first, second),
            "created": lambda: metrics.observations_created.labels(source, first),
            "updated": lambda: metrics.observations_updated.labels(source, first),
            "deduped": lambda: metrics.observations_deduped.labels(source),
            "filtered": lambda: metrics.observations_filtered.labels(source, first),
            "rejected": lambda: metrics.rejected.labels(source, first),
            "create_errors": lambda: metrics.create_errors.labels(source, first),
        }
        return families[kind]()
