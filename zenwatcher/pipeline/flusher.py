"""The flusher: hands the repeats the dedup cache absorbed to the writer, about one status write
per finding per window (docs/design.md §3).

Counts that left the cache are the flusher's until they are queued: if it is stopped while the
write queue is full, what it still holds stays in `unsent`, which shutdown queues with the rest.
"""

from __future__ import annotations

import asyncio
import collections

from zenwatcher.finding import Finding
from zenwatcher.observation import observation_namespace
from zenwatcher.pipeline.dedup import DedupCache, Flush
from zenwatcher.pipeline.jobs import IncrementJob, WriteJob


class Flusher:
    """Moves due absorbed counts from the dedup cache into the write queue."""

    def __init__(
        self, *, dedup: DedupCache, queue: asyncio.Queue[WriteJob], default_namespace: str
    ) -> None:
        self.dedup = dedup
        self.queue = queue
        self._default_namespace = default_namespace
        # Flushes taken from the cache but not yet queued when the flusher was stopped.
        self.unsent: list[Flush] = []

    async def run(self, *, interval: float) -> None:
        """Forever: queue the counts that are due."""
        while True:
            await asyncio.sleep(interval)
            await self.enqueue(self.dedup.due_flushes())

    async def enqueue(self, flushes: list[Flush]) -> None:
        """Queue one status increment per flushed finding; what a cancellation leaves unqueued
        goes to `unsent`."""
        pending = collections.deque(flushes)
        try:
            while pending:
                flush = pending[0]
                finding = flush.payload
                assert isinstance(finding, Finding)  # the intake keeps the finding as payload
                await self.queue.put(
                    IncrementJob(
                        finding=finding,
                        namespace=observation_namespace(
                            finding, default_namespace=self._default_namespace
                        ),
                        count_delta=flush.count_delta,
                        last_seen=flush.last_seen,
                    )
                )
                pending.popleft()
        finally:
            self.unsent.extend(pending)

    def take_unsent(self) -> list[Flush]:
        """What a stopped flusher still held; it holds nothing after this."""
        unsent, self.unsent = self.unsent, []
        return unsent
