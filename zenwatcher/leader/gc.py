"""Garbage collection of expired Observations (docs/design.md §3 "GC", leader only).

When an Observation expires is the resource's rule (`observation.expiry_and_reason`): its TTL
counts from `status.lastSeen`, else its creation, or from `status.resolvedAt` for a Resolved
report finding; an Open one is the report controller's and never expires. `sweep_once` walks the
watched scope one list page at a time and deletes as it goes, each delete rate-limited and
conditional on the resourceVersion it read, so an Observation updated since the list (a new
lastSeen) survives. `gc_sweeper` sweeps forever on a jittered period. What every sweep needs is
one `Collector`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NoReturn, cast

import structlog

from zenwatcher.kube import errors, observations
from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics
from zenwatcher.observation import expiry_and_reason, field_of
from zenwatcher.pacing import TokenBucket

logger = structlog.get_logger()

# gc_errors{reason}.
ERROR_BAD_TIMESTAMP = "bad_timestamp"
ERROR_LIST = "list"
ERROR_DELETE = "delete"
ERRORS = (ERROR_BAD_TIMESTAMP, ERROR_LIST, ERROR_DELETE)

INITIAL_DELAY = 30.0  # seconds after gaining leadership before the first sweep (at most `interval`)
JITTER = 0.1  # each sleep is `interval` stretched or shrunk by up to 10 %
MAX_RELISTS = 3  # restarts of one scope's list after its continue token expired (410)


class DeleteOutcome(enum.StrEnum):
    """What a conditional delete of one expired Observation did."""

    DELETED = "deleted"
    CHANGED = "changed"  # updated (or recreated) since it was read: the precondition said 409
    GONE = "gone"  # someone else deleted it first: 404


@dataclass(slots=True, kw_only=True)
class SweepResult:
    """Counts of one sweep; `errors` includes unparseable timestamps and failed calls."""

    examined: int = 0
    deleted: int = 0
    changed: int = 0
    gone: int = 0
    errors: int = 0
    outcome: Literal["ok", "error"] = "ok"


@dataclass(frozen=True, slots=True, kw_only=True)
class Collector:
    """What every sweep needs: the API, the scope (empty = cluster-wide), the TTL of an
    Observation that names none, the list page size, the delete rate, metrics and the clock."""

    client: KubeClient
    namespaces: tuple[str, ...]
    default_ttl: int
    page_size: int
    limiter: TokenBucket
    metrics: Metrics
    now: Callable[[], datetime]
    # With WATCH_NAMESPACE_SELECTOR: the namespaces in scope at each sweep, instead of
    # `namespaces` (a namespace that left is no longer swept by us).
    scope: Callable[[], tuple[str, ...]] | None = None

    def current_namespaces(self) -> tuple[str, ...]:
        return self.scope() if self.scope is not None else self.namespaces


class _SweepStopped(Exception):
    """The API server is in trouble (or RBAC says no): end this sweep, retry next interval."""


def jittered(seconds: float, *, rng: random.Random) -> float:
    """`seconds` stretched or shrunk by up to JITTER, so shards do not sweep in step."""
    return seconds * (1.0 + rng.uniform(-JITTER, JITTER))


async def delete_expired(
    *,
    client: KubeClient,
    observation: Mapping[str, Any],
    limiter: TokenBucket,
) -> DeleteOutcome:
    """Delete the Observation only if unchanged since it was read; waits for a rate token.

    Other API errors (and TransportError) are raised for the caller to judge.
    """
    metadata = observation["metadata"]
    await limiter.acquire()
    try:
        await observations.delete_observation(
            client,
            metadata["namespace"],
            metadata["name"],
            resource_version=metadata["resourceVersion"],
        )
    except errors.Conflict:
        return DeleteOutcome.CHANGED
    except errors.NotFound:
        return DeleteOutcome.GONE
    return DeleteOutcome.DELETED


async def sweep_once(collector: Collector) -> SweepResult:
    """One pass over the collector's scope, deleting what has expired."""
    sweep = _Sweep(collector)
    started = time.perf_counter()
    try:
        # One list per watched namespace, so a shard never touches another shard's namespaces.
        namespaces = collector.current_namespaces()
        for namespace in namespaces or (None,):
            await sweep.scope(namespace)
    except _SweepStopped:
        sweep.result.outcome = "error"
    _report(
        sweep.result,
        namespaces=namespaces,
        duration=time.perf_counter() - started,
        metrics=collector.metrics,
    )
    return sweep.result


def _report(
    result: SweepResult, *, namespaces: tuple[str, ...], duration: float, metrics: Metrics
) -> None:
    """The sweep's metrics and its one canonical log line."""
    metrics.gc_runs.labels(outcome=result.outcome).inc()
    metrics.gc_duration.observe(duration)
    logger.info(
        "gc_sweep_finished",
        outcome=result.outcome,
        namespaces=list(namespaces) or "*",
        examined=result.examined,
        deleted=result.deleted,
        changed=result.changed,
        gone=result.gone,
        errors=result.errors,
        duration_seconds=round(duration, 3),
    )


class _Sweep:
    """The state of one sweep: what it needs, and what it has counted so far."""

    __slots__ = ("client", "default_ttl", "limiter", "metrics", "now", "page_size", "result")

    def __init__(self, collector: Collector) -> None:
        self.client = collector.client
        self.default_ttl = collector.default_ttl
        self.page_size = collector.page_size
        self.limiter = collector.limiter
        self.metrics = collector.metrics
        self.now = collector.now
        self.result = SweepResult()

    async def scope(self, namespace: str | None) -> None:
        """Every Observation of one list scope, deleted page by page as the list goes."""
        for attempt in range(MAX_RELISTS + 1):
            try:
                await self._walk(namespace)
            except errors.Gone as error:
                # The continue token outlived etcd compaction (a long, rate-limited sweep).
                # What was deleted is gone; start this scope's list again from the top.
                if attempt == MAX_RELISTS:
                    self._fail(ERROR_LIST, error, namespace=namespace or "*")
                logger.info("gc_list_restarted", namespace=namespace or "*")
            except (errors.ApiError, errors.TransportError) as error:
                self._fail(ERROR_LIST, error, namespace=namespace or "*")
            else:
                return

    async def _walk(self, namespace: str | None) -> None:
        listing = observations.list_observations(
            self.client, namespace=namespace, page_size=self.page_size
        )
        # Close the generator here, not in a finalizer task, when a delete stops the sweep.
        async with contextlib.aclosing(cast(AsyncGenerator[dict[str, Any], None], listing)):
            async for observation in listing:
                await self.examine(observation)

    async def examine(self, observation: Mapping[str, Any]) -> None:
        """Delete the Observation if it has expired."""
        self.result.examined += 1
        found = expiry_and_reason(observation, default_ttl=self.default_ttl)
        if found is None:
            self.result.errors += 1
            self.metrics.gc_errors.labels(reason=ERROR_BAD_TIMESTAMP).inc()
            logger.warning(
                "gc_bad_timestamp",
                **_where(observation),
                last_seen=field_of(observation, "status", "lastSeen"),
                created=field_of(observation, "metadata", "creationTimestamp"),
            )
            return
        expiry, reason = found
        if expiry <= self.now():
            await self._delete(observation, reason)

    async def _delete(self, observation: Mapping[str, Any], reason: str) -> None:
        try:
            outcome = await delete_expired(
                client=self.client, observation=observation, limiter=self.limiter
            )
        except (errors.ApiError, errors.TransportError) as error:
            # Server trouble or RBAC would fail every delete: stop. Anything else is about
            # this one object: count it and go on, so one odd object cannot block GC.
            if errors.is_retriable(error) or isinstance(error, errors.Forbidden):
                self._fail(ERROR_DELETE, error, **_where(observation))
            self._count_error(ERROR_DELETE, error, **_where(observation))
            return
        if outcome is DeleteOutcome.DELETED:
            self.result.deleted += 1
            self.metrics.gc_deleted.labels(reason=reason).inc()
        elif outcome is DeleteOutcome.CHANGED:
            self.result.changed += 1
            logger.debug("gc_delete_skipped_changed", **_where(observation))
        else:
            self.result.gone += 1

    def _count_error(self, reason: str, error: Exception, **where: str) -> None:
        self.result.errors += 1
        self.metrics.gc_errors.labels(reason=reason).inc()
        logger.warning("gc_call_failed", reason=reason, error=str(error), **where)

    def _fail(self, reason: str, error: Exception, **where: str) -> NoReturn:
        self._count_error(reason, error, **where)
        raise _SweepStopped(reason) from error


def _where(observation: Mapping[str, Any]) -> dict[str, str]:
    metadata = observation.get("metadata") or {}
    return {"namespace": str(metadata.get("namespace", "")), "name": str(metadata.get("name", ""))}


async def gc_sweeper(
    collector: Collector,
    *,
    interval: float,
    initial_delay: float = INITIAL_DELAY,  # 0 for tests
    rng: random.Random | None = None,  # seeded for tests
) -> None:
    """Forever: sweep, then sleep about `interval`; cancelled when leadership ends.

    The first sweep waits `min(initial_delay, interval)` (jittered), so a new leader lists its
    informers first and a leadership flap does not trigger a sweep at every acquisition.
    """
    rng = rng or random.Random()  # noqa: S311 -- jitter, not cryptography
    await asyncio.sleep(jittered(min(initial_delay, interval), rng=rng))
    while True:
        try:
            await sweep_once(collector)
        except Exception:
            # A bug in one sweep must not end GC for the rest of the leadership term.
            logger.exception("gc_sweep_crashed")
            collector.metrics.gc_runs.labels(outcome="error").inc()
        await asyncio.sleep(jittered(interval, rng=rng))
