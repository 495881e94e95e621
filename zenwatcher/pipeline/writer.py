"""The Observation writer: a fixed number of workers draining the bounded write queue.

A new finding is one API call: the create carries its status (count, firstSeen, lastSeen and, for
a report finding, phase Open), since the CRD, like PolicyReport's, has no status subresource. A
409 AlreadyExists means the finding exists already (another window, another replica), so it
counts as a repeat. Counts are added with the resourceVersion that was read, so concurrent
replicas never lose one (409 on a stale read = read again). 429, 5xx and connection errors are
retried with jittered backoff (Retry-After honoured) for up to `retry_for` seconds
(`retrying`); other errors fail the job at once.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from zenwatcher.finding import Finding
from zenwatcher.kube import errors, observations
from zenwatcher.kube.client import KubeClient
from zenwatcher.mapping.timestamps import parse_time
from zenwatcher.metrics import Metrics
from zenwatcher.observation import (
    WRITE_ID_ANNOTATION,
    Phase,
    PhaseLabel,
    field_of,
    merged_status,
    phase_labels,
    reopened_status,
    rfc3339,
    to_observation,
)
from zenwatcher.pacing import TokenBucket
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.budget import Budget
from zenwatcher.pipeline.jobs import (
    CreateJob,
    IncrementJob,
    OpenJob,
    ResolveJob,
    Term,
    WriteJob,
    job_name,
    job_source,
    outlived_its_term,
)
from zenwatcher.pipeline.retrying import (
    LEADERSHIP_LOST,
    AmbiguousWrite,
    RetryingCaller,
    WriteFailed,
)

logger = structlog.get_logger()
MAX_CONFLICT_RETRIES = 20


class Writer:
    """Turns write jobs into API calls, accounting each job's events once."""

    def __init__(
        self,
        *,
        client: KubeClient,
        accounting: Accounting,
        metrics: Metrics,
        limiter: TokenBucket,
        ttl_seconds: int,
        default_namespace: str,
        retry_for: float = 300.0,
        budget: Budget | None = None,
    ) -> None:
        self._client = client
        self._budget = budget
        self._accounting = accounting
        self._metrics = metrics
        self._calls = RetryingCaller(limiter=limiter, metrics=metrics, retry_for=retry_for)
        self._ttl_seconds = ttl_seconds
        self._default_namespace = default_namespace

    async def worker(self, queue: asyncio.Queue[WriteJob]) -> None:
        """Forever: take a job, write it, mark it done (so `queue.join()` can drain)."""
        while True:
            job = await queue.get()
            try:
                await self.write(job)
            finally:
                queue.task_done()
                self._metrics.queue_depth.set(queue.qsize())

    async def write(self, job: WriteJob) -> None:
        """Do one job; failures are accounted, logged and swallowed (the worker lives on)."""
        operation = type(job).__name__.removesuffix("Job").lower()
        if outlived_its_term(job):
            # Counted, not logged one by one: a lost term can leave a whole sync queued.
            events = 1 if isinstance(job, OpenJob) else 0
            self._accounting.failed(job_source(job), LEADERSHIP_LOST, events=events)
            return
        started = time.perf_counter()
        try:
            await self._dispatch(job)
        except WriteFailed as failure:
            self._fail(job, operation, failure.reason, str(failure))
        except Exception as error:  # a bug must not kill the worker or lose the accounting
            logger.exception("observation_write_crashed", name=job_name(job))
            self._fail(job, operation, "internal", repr(error))
        finally:
            self._metrics.write_latency.labels(operation).observe(time.perf_counter() - started)

    async def _dispatch(self, job: WriteJob) -> None:
        source = job_source(job)
        if isinstance(job, CreateJob | OpenJob):
            if await self._refused(job):
                return
            try:
                await self._write_new(job, source)
            except BaseException:
                self._release(job.namespace)
                raise
        elif isinstance(job, IncrementJob):
            await self._increment(job)
            self._accounting.updated(source, "flush", events=0)
        elif await self._resolve(job):
            self._accounting.updated(source, "resolved", events=0)

    async def _write_new(self, job: CreateJob | OpenJob, source: str) -> None:
        """A finding new to this window (or a report's wanted one): its budget place is held."""
        if isinstance(job, CreateJob):
            outcome = await self._create_or_add(
                job.finding, job.namespace, delta=1, seen=job.seen_at, term=None
            )
            if outcome == "created":
                self._accounting.created(source, job.finding.severity.value)
            else:
                self._release(job.namespace)
                self._accounting.updated(source, "repeat")
            return
        outcome = await self._open(job)
        if outcome == "created":
            self._accounting.created(source, job.finding.severity.value)
            return
        self._release(job.namespace)
        if outcome == "reopened":
            self._accounting.updated(source, "reopen")
            self._metrics.findings_reopened.labels(source).inc()
        else:
            self._accounting.deduplicated(source)

    def _release(self, namespace: str) -> None:
        if self._budget is not None:
            self._budget.release(namespace)

    async def _refused(self, job: CreateJob | OpenJob) -> bool:
        """Whether the etcd budget has no room for this new finding (then it is accounted, and
        a report finding handed back to its term to be written when there is room). One that
        exists already adds no object, so it is never refused."""
        if self._budget is None:
            return False
        refusal = self._budget.reserve(job.namespace, job.finding.severity)
        if refusal is None:
            return False
        read = functools.partial(
            observations.get_observation, self._client, job.namespace, job.finding.name
        )
        term = job.term if isinstance(job, OpenJob) else None
        try:
            await self._calls.call("get", read, budget=self._calls.budget(term))
        except errors.NotFound:
            self._accounting.over_budget(job_source(job), refusal.scope)
            if isinstance(job, OpenJob) and job.term is not None:
                job.term.open_deferred(job)
            logger.debug(
                "observation_over_budget",
                name=job.finding.name,
                namespace=job.namespace,
                severity=job.finding.severity.value,
                scope=refusal.scope,
                used=refusal.used,
                limit=refusal.limit,
            )
            return True
        self._budget.hold(job.namespace)  # it exists: the write is a repeat, given back after
        return False

    def _fail(self, job: WriteJob, operation: str, reason: str, message: str) -> None:
        if isinstance(job, OpenJob) and job.term is not None:
            job.term.open_failed(job.finding.name)
        # Increments and resolutions are not arrivals: their events were accounted already.
        events = 1 if isinstance(job, CreateJob | OpenJob) else 0
        self._accounting.failed(job_source(job), reason, events=events)
        logger.warning(
            "observation_write_failed",
            name=job_name(job),
            namespace=job.namespace,
            operation=operation,
            reason=reason,
            error=message,
        )

    async def _open(self, job: OpenJob) -> str:
        """Create a report finding ("created"), reopen it ("reopened"), or find it Open."""
        finding, seen, term = job.finding, job.seen_at, job.term
        created, namespace = await self._create(
            finding, job.namespace, seen=seen, count=1, term=term
        )
        if created is None:
            changed = await self._update_status(
                namespace,
                finding.name,
                lambda obs: reopened_status(obs, seen=seen),
                current=None,
                term=term,
                labels=phase_labels(PhaseLabel.OPEN),
            )
            return "reopened" if changed else "unchanged"
        return "created"

    async def _resolve(self, job: ResolveJob) -> bool:
        """Mark Resolved unless it already is (or is gone); True when a write happened.

        Only the write that changes the phase observes the time to resolve, so a resolution is
        counted once whatever retries or replicas did (the write is resourceVersion-guarded).
        """
        resolving: list[dict[str, Any]] = []  # the version the write was computed from

        def compute(observation: dict[str, Any]) -> dict[str, Any] | None:
            if (observation.get("status") or {}).get("phase") == Phase.RESOLVED.value:
                return None
            resolving[:] = [observation]
            return {
                "phase": Phase.RESOLVED.value,
                "resolvedAt": rfc3339(job.resolved_at),
            }

        try:
            changed = await self._update_status(
                job.namespace,
                job.name,
                compute,
                current=None,
                term=job.term,
                labels=phase_labels(PhaseLabel.RESOLVED),
            )
        except errors.NotFound:
            return False
        if changed and resolving:
            self._observe_time_to_resolve(resolving[0], job)
        return changed

    def _observe_time_to_resolve(self, observation: dict[str, Any], job: ResolveJob) -> None:
        detected = parse_time(field_of(observation, "spec", "detectedAt"))
        if detected is None:
            return  # written by something else without a time: nothing to measure from
        severity = str(field_of(observation, "spec", "severity") or "unknown")
        seconds = max(0.0, (job.resolved_at - detected).total_seconds())
        self._metrics.time_to_resolve.labels(job.source, severity).observe(seconds)

    async def _create_or_add(
        self, finding: Finding, namespace: str, *, delta: int, seen: datetime, term: Term | None
    ) -> str:
        """Create with count `delta`, or add `delta` to the existing one: "created" or "repeat"."""
        created, namespace = await self._create(
            finding, namespace, seen=seen, count=delta, term=term
        )
        if created is not None:
            return "created"
        await self._add(finding, namespace, delta=delta, seen=seen, current=None, term=term)
        return "repeat"

    async def _create(
        self, finding: Finding, namespace: str, *, seen: datetime, count: int, term: Term | None
    ) -> tuple[dict[str, Any] | None, str]:
        """POST the Observation with its status (`count` occurrences, the last at `seen`): (the
        created object, or None when it exists; its namespace).

        A namespace that does not exist (deleted, or named by a tool but never created) sends
        the finding to the watcher's own namespace rather than losing it.
        """
        body = to_observation(
            finding, namespace=namespace, now=seen, ttl_seconds=self._ttl_seconds, count=count
        )
        try:
            created = await self._calls.call(
                "create",
                lambda: observations.create_observation(self._client, body),
                budget=self._calls.budget(term),
            )
        except errors.NotFound as missing:
            if namespace == self._default_namespace:
                raise WriteFailed("namespace_missing", str(missing)) from missing
            return await self._create(
                finding, self._default_namespace, seen=seen, count=count, term=term
            )
        except errors.Conflict as conflict:
            if not conflict.already_exists:
                raise WriteFailed("conflict", str(conflict)) from conflict
            return None, namespace
        self._metrics.findings_detected.detected(finding, namespace)
        return created, namespace

    async def _increment(self, job: IncrementJob) -> None:
        try:
            await self._add(
                job.finding,
                job.namespace,
                delta=job.count_delta,
                seen=job.last_seen,
                current=None,
                term=None,
            )
        except errors.NotFound:
            # Collected, never created, or written to the fallback namespace: the repeats
            # still happened, so create (or find) it and add them there.
            await self._create_or_add(
                job.finding, job.namespace, delta=job.count_delta, seen=job.last_seen, term=None
            )

    async def _add(
        self,
        finding: Finding,
        namespace: str,
        *,
        delta: int,
        seen: datetime,
        current: dict[str, Any] | None,
        term: Term | None,
    ) -> None:
        """status.count += delta and lastSeen = max(lastSeen, seen), safe against races."""

        def compute(observation: dict[str, Any]) -> dict[str, Any]:
            status = merged_status(observation, delta=delta, seen=seen)
            if finding.origin is not None:
                status["phase"] = Phase.OPEN.value
            return status

        labels = phase_labels(PhaseLabel.OPEN) if finding.origin is not None else None
        await self._update_status(
            namespace, finding.name, compute, current=current, term=term, labels=labels
        )

    async def _update_status(
        self,
        namespace: str,
        name: str,
        compute: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        current: dict[str, Any] | None,
        term: Term | None,
        labels: Mapping[str, str] | None = None,
    ) -> bool:
        """Compare-and-set of .status: read (unless given), compute, patch with the read
        resourceVersion; a 409 means someone wrote first, so read again. False = no change.
        `labels` are merged into metadata.labels by the same write (the phase label).

        A patch whose answer was lost (connection, 5xx) may have been applied: retrying it
        blindly would meet our own write as a 409 and add the delta twice. So it is not
        retried; the object is read again, and it was ours if it carries this write's id (an
        annotation each patch sets: two writers that computed the same status from the same
        version still differ in it, so neither mistakes the other's write for its own).
        """
        budget = self._calls.budget(term)  # one schedule for the whole update, re-reads included
        read = functools.partial(observations.get_observation, self._client, namespace, name)
        conflicts = 0
        while True:
            if current is None:
                current = await self._calls.call("get", read, budget=budget)
            status = compute(current)
            if status is None:
                return False
            version = current["metadata"]["resourceVersion"]
            write_id = secrets.token_hex(8)
            try:
                await self._calls.call(
                    "patch_status",
                    functools.partial(
                        observations.patch_status,
                        self._client,
                        namespace,
                        name,
                        status=status,
                        resource_version=version,
                        annotations={WRITE_ID_ANNOTATION: write_id},
                        labels=labels,
                    ),
                    retry_ambiguous=False,
                    budget=budget,
                )
            except errors.Conflict:
                conflicts += 1
                if conflicts >= MAX_CONFLICT_RETRIES:
                    raise WriteFailed(
                        "conflict", f"{namespace}/{name}: status kept changing under us"
                    ) from None
                current = None
                continue
            except AmbiguousWrite:
                current = await self._calls.call("get", read, budget=budget)
                if _applied(current, write_id):
                    return True
                continue
            return True


def _applied(current: dict[str, Any], write_id: str) -> bool:
    """The object's last status write was the one with `write_id`."""
    annotations = current["metadata"].get("annotations") or {}
    return bool(annotations.get(WRITE_ID_ANNOTATION) == write_id)
