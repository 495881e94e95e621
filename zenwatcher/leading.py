"""What the elected leader does during one term: the report controller and garbage collection.

A term is one TaskGroup, so a lost Lease (the elector cancels the term) stops informers,
reconciliation and GC together; nothing of it runs on followers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog

from zenwatcher import garbage
from zenwatcher.aiokits.ratelimit import TokenBucket
from zenwatcher.informers.reports import ReportController
from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.intake import FilterState
from zenwatcher.pipeline.jobs import WriteJob
from zenwatcher.settings import Settings

logger = structlog.get_logger()


class LeaderWork:
    """Builds and runs one leadership term; tells readiness whether its informers synced."""

    def __init__(
        self,
        *,
        client: KubeClient,
        settings: Settings,
        queue: asyncio.Queue[WriteJob],
        filters: FilterState,
        accounting: Accounting,
        metrics: Metrics,
    ) -> None:
        self._client = client
        self._settings = settings
        self._queue = queue
        self._filters = filters
        self._accounting = accounting
        self._metrics = metrics
        self._controller: ReportController | None = None

    def synced(self) -> bool:
        """True on followers; on the leader, once every report informer has listed."""
        return self._controller is None or self._controller.synced()

    async def lead(self) -> None:
        """One term: runs until cancelled (Lease lost, or shutdown)."""
        self._controller = ReportController(
            client=self._client,
            settings=self._settings,
            queue=self._queue,
            filters=self._filters,
            accounting=self._accounting,
            metrics=self._metrics,
        )
        logger.info("leader_work_started")
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._controller.run(), name="report-controller")
                group.create_task(self._gc(), name="gc-sweeper")
        finally:
            self._controller = None
            self._metrics.informers_synced.set(0)
            logger.info("leader_work_stopped")

    async def _gc(self) -> None:
        settings = self._settings
        await garbage.gc_sweeper(
            interval=settings.gc.interval_seconds,
            client=self._client,
            namespaces=gc_scope(settings),
            default_ttl=settings.ttl_seconds,
            page_size=settings.gc.page_size,
            limiter=TokenBucket(rate=settings.gc.delete_rate, burst=1),
            metrics=self._metrics,
            now=lambda: datetime.now(UTC),
        )


def gc_scope(settings: Settings) -> tuple[str, ...]:
    """Namespaces GC may touch: the watched ones plus our own (where findings without a
    namespace go); empty = the whole cluster."""
    if not settings.watch_namespaces:
        return ()
    return tuple(dict.fromkeys((*settings.watch_namespaces, settings.pod_namespace)))
