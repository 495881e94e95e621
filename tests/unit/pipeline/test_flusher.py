"""The flusher stopped while the write queue is full: the counts it held are not lost.

The dedup cache runs on a fake monotonic clock (a window passes without waiting for it).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from tests.harness.writers import make_writer
from zenwatcher import daemon, records
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.dedup import DedupCache
from zenwatcher.pipeline.intake import FilterState
from zenwatcher.pipeline.jobs import IncrementJob, WriteJob


def finding(index: int) -> records.Finding:
    return records.Finding(
        source="falco",
        category=records.Category.SECURITY,
        severity=records.Severity.LOW,
        event_type="runtime_detection",
        identity=(str(index),),
    )


def pipeline_with(cache: DedupCache, queue: asyncio.Queue[WriteJob]) -> daemon.Pipeline:
    metrics = Metrics(CollectorRegistry())
    writer = make_writer(None, metrics)  # never called here: no write leaves the queue
    return daemon.Pipeline(
        queue=queue,
        dedup=cache,
        filters=FilterState(),
        accounting=Accounting(metrics),
        writer=writer,
    )


async def test_counts_held_by_a_cancelled_flusher_are_sent_at_shutdown() -> None:
    clock = [0.0]
    cache = DedupCache(window_seconds=1.0, max_size=100, clock=lambda: clock[0])
    for index in range(3):
        for _ in range(4):  # first sighting + 3 repeats each
            cache.observe(
                f"ns/{finding(index).name}", now_wall=datetime.now(UTC), payload=finding(index)
            )
    queue: asyncio.Queue[WriteJob] = asyncio.Queue(maxsize=1)
    backlog = IncrementJob(
        finding=finding(99), namespace="ns", count_delta=1, last_seen=datetime.now(UTC)
    )
    queue.put_nowait(backlog)  # the write queue is full
    pipeline = pipeline_with(cache, queue)
    clock[0] = 5.0  # a window later: every key is due

    flusher = asyncio.create_task(daemon.flusher(pipeline, interval=0.01))
    await asyncio.sleep(0.1)
    assert 0 == cache.pending_repeats  # the flusher took them and waits for room
    flusher.cancel()
    await asyncio.gather(flusher, return_exceptions=True)

    assert 9 == sum(flush.count_delta for flush in pipeline.unsent_flushes)
    queue.get_nowait()  # the writers make room
    queue.task_done()
    pipeline.queue = asyncio.Queue()
    await daemon.enqueue_flushes(pipeline, pipeline.unsent_flushes + cache.drain())
    jobs = [pipeline.queue.get_nowait() for _ in range(pipeline.queue.qsize())]
    assert 9 == sum(job.count_delta for job in jobs if isinstance(job, IncrementJob))
    assert 3 == len(jobs)
