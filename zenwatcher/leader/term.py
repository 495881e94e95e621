"""What the elected leader does during one term: the report controller, garbage collection
and the gauges of the findings that exist.

A term is one TaskGroup, so a lost Lease (the elector cancels the term) stops informers,
reconciliation, GC and the findings gauges together; nothing of it runs on followers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog

from zenwatcher.leader.context import LeaderContext
from zenwatcher.leader.findings import findings_gauge
from zenwatcher.leader.gc import Collector, gc_sweeper
from zenwatcher.leader.report_controller import ReportController
from zenwatcher.pacing import TokenBucket
from zenwatcher.pipeline.jobs import Term

logger = structlog.get_logger()


class LeaderWork:
    """Builds and runs one leadership term; tells readiness whether its informers synced."""

    def __init__(self, context: LeaderContext) -> None:
        self._context = context
        self._controller: ReportController | None = None

    def synced(self) -> bool:
        """Whether the running term's report informers have all listed: False until a term
        has built its controller; always True without report work (WATCH_REPORTS=false).
        Only meaningful on the leader: readiness asks only while this pod leads."""
        if not self._context.settings.watch_reports:
            return True
        return self._controller is not None and self._controller.synced()

    async def lead(self) -> None:
        """One term: runs until cancelled (Lease lost, or shutdown). With WATCH_REPORTS=false
        (a webhook tier in front of namespace shards) the term is GC only."""
        term = Term()
        reports = self._context.settings.watch_reports
        if reports:
            self._controller = ReportController(context=self._context, term=term)
        logger.info("leader_work_started", reports=reports)
        try:
            async with asyncio.TaskGroup() as group:
                if self._controller is not None:
                    group.create_task(self._controller.run(), name="report-controller")
                group.create_task(self._gc(), name="gc-sweeper")
                group.create_task(
                    findings_gauge(
                        client=self._context.client,
                        namespaces=self._context.settings.observation_namespaces,
                        metrics=self._context.metrics,
                        scope=self._context.scope,
                    ),
                    name="findings-gauge",
                )
        finally:
            term.ended = True  # its queued report writes are dropped, not done late
            self._controller = None
            self._context.metrics.informers_synced.set(0)
            logger.info("leader_work_stopped")

    async def _gc(self) -> None:
        settings = self._context.settings
        scope = self._context.scope
        collector = Collector(
            client=self._context.client,
            namespaces=settings.observation_namespaces,
            scope=scope.observation_namespaces if scope is not None and scope.dynamic else None,
            default_ttl=settings.ttl_seconds,
            page_size=settings.gc.page_size,
            limiter=TokenBucket(rate=settings.gc.delete_rate, burst=1),
            metrics=self._context.metrics,
            now=lambda: datetime.now(UTC),
        )
        await gc_sweeper(collector, interval=settings.gc.interval_seconds)
