"""The leader elector: acquire a Lease, run the leader's work while renewing it, stop on loss.

Semantics follow client-go's tools/leaderelection on a coordination.k8s.io Lease (see
`election.record`). A term ends when a renewal misses its deadline, another holder shows up, or
the work itself ends; the work is cancelled and awaited before anything else happens. Graceful
shutdown cancels `run()`, then calls `release()`; a waiting candidate also watches the Lease
(`election.release_watch`), so a follower takes over as soon as it sees the release, and after
a crash a lease duration after the last renewal it saw happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from zenwatcher.election import record, release_watch
from zenwatcher.kube import errors, leases
from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics

logger = structlog.get_logger()

# client-go's leaderelection.JitterFactor is 1.2 (acquire attempts every retry * [1, 2.2)), which
# lets a crashed leader stand for up to lease + 2 x 2.2 x retry (about 24 s at 15/2). Candidates
# here poll every retry * [1, 1.2), see each renewal through the Lease watch as it happens, and
# wake right at the observed expiry, so the takeover after a crash comes a lease (plus the
# watch's and one call's latency) after the last renewal; a candidate that can only poll
# bounds it by lease + 1.2 x retry (the design's 17 s). The spread keeps candidates out of step.
JITTER_FACTOR = 0.2
# client-go's own check, with its JitterFactor: renew_deadline > 1.2 x retry_period.
TIMING_CHECK_FACTOR = 1.2
EXPIRY_MARGIN = 0.05  # seconds past the observed expiry at which a waiting candidate tries
# client-go NewFromKubeconfig: per-request timeout max(1 s, renew_deadline / 2), so one hung
# request cannot use up the whole renew deadline.
MIN_CALL_TIMEOUT = 1.0

Lead = Callable[[], Awaitable[None]]
API_FAILURES = (errors.ApiError, errors.TransportError)


class _Renewal(enum.Enum):
    RENEWED = "renewed"
    FAILED = "failed"
    HELD_BY_ANOTHER = "held_by_another"


class LeaderElector:
    """Runs `lead()` only while this identity holds the Lease `namespace/name`."""

    def __init__(
        self,
        *,
        client: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),  # only for timestamps
    ) -> None:
        _check_timing(int(lease_duration), renew_deadline, retry_period)
        if not identity:
            raise ValueError("leader election identity is empty")
        self._client = client
        self._namespace = namespace
        self._name = name
        self._identity = identity
        self._lease_seconds = int(lease_duration)
        self._renew_deadline = renew_deadline
        self._retry_period = retry_period
        self._call_timeout = max(MIN_CALL_TIMEOUT, renew_deadline / 2)
        self._metrics = metrics
        self._clock = clock
        self._wall_clock = wall_clock
        self._observed = record.ObservedLease()
        self._lease: dict[str, Any] | None = None  # last Lease read or written (resourceVersion)
        self._renewed_at = 0.0  # monotonic start of the last successful write by this identity
        self._leading = asyncio.Event()
        self._released = asyncio.Event()  # set by the release watch while acquiring
        self._tried = False  # whether an attempt at the Lease has ended yet
        self._random = random.Random()  # noqa: S311 - jitter, not cryptography
        self._log = logger.bind(lease=f"{namespace}/{name}", identity=identity)
        metrics.leader.set(0)

    @property
    def is_leader(self) -> bool:
        """True while `lead()` runs under a Lease this identity holds."""
        return self._leading.is_set()

    @property
    def has_tried(self) -> bool:
        """True once the first attempt at the Lease has ended, won or not: until then this
        candidate cannot tell whether it leads."""
        return self._tried

    async def wait_leading(self) -> None:
        """Return once this identity leads (at once if it already does)."""
        await self._leading.wait()

    async def run(self, lead: Lead) -> None:
        """Forever: acquire, run `lead()` for one term, go back to acquiring.

        Cancelling stops the work and waits for it, but keeps the Lease until the caller
        calls `release()`.
        """
        try:
            while True:
                await self._acquire()
                await self._lead_term(lead)
                # A term that ended (lost, or work that failed) waits before trying again,
                # so failing work cannot spin on the API server.
                await self._sleep_jittered()
        except asyncio.CancelledError:
            self._log.info("leader_election_stopped", holds_lease=self._holds_lease())
            raise
        finally:
            self._stop_leading()

    async def release(self) -> None:
        """Hand the Lease over at once if this identity still holds it; a no-op otherwise.

        Call after `run()` has ended. Shielded from cancellation and bounded by the renew
        deadline; a fresh read and a resourceVersion-guarded write make sure it never clears
        another holder's record.
        """
        if self._holds_lease():
            await asyncio.shield(self._release())

    async def _acquire(self) -> None:
        """Try at once, then every jittered retry period (or as soon as the Lease is seen
        released), until the Lease is ours."""
        self._released.clear()
        acquired = await self._try_acquire()
        self._tried = True  # in the same step as _leading.set(): no moment between
        if not acquired:
            # Watched from the version just read: only a release after this read wakes us.
            watcher = asyncio.create_task(
                release_watch.watch_releases(
                    client=self._client,
                    namespace=self._namespace,
                    name=self._name,
                    resource_version=self._read_version,
                    wake=self._released.set,
                    observe=self._seen_by_watch,
                    retry_period=self._retry_period,
                ),
                name=f"lease-watch:{self._name}",
            )
            try:
                while not acquired:
                    await self._sleep_until_next_attempt()
                    self._released.clear()  # a release seen from here on means try again
                    acquired = await self._try_acquire()
            finally:
                await _cancel_and_wait(watcher)
        self._leading.set()
        self._metrics.leader.set(1)
        self._metrics.leader_transitions.labels(direction="acquired").inc()
        current = self._observed.record
        self._log.info("lease_acquired", transitions=current.transitions if current else 0)

    async def _try_acquire(self) -> bool:
        """One client-go tryAcquireOrRenew for a candidate; False = not (yet) ours."""
        started = self._clock()
        try:
            lease = await leases.get_lease(
                self._client, self._namespace, self._name, timeout=self._call_timeout
            )
        except errors.NotFound:
            return await self._create(started)
        except API_FAILURES as error:
            self._log.warning("lease_read_failed", error=str(error))
            return False
        current = self._observe(lease)
        if not record.can_acquire(self._observed, identity=self._identity, now=self._clock()):
            return False
        wanted = self._acquiring(current)
        try:
            await self._put(wanted, started=started, timeout=self._call_timeout)
        except errors.Conflict:
            # Another candidate wrote first: we lost this race; the next attempt re-reads.
            self._log.debug("lease_conflict", operation="update")
            return False
        except API_FAILURES as error:
            self._log.warning("lease_write_failed", error=str(error))
            return False
        return True

    async def _create(self, started: float) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._name, "namespace": self._namespace},
            "spec": record.to_spec(self._acquiring(None)),
        }
        try:
            lease = await leases.create_lease(self._client, body, timeout=self._call_timeout)
        except errors.Conflict:
            self._log.debug("lease_conflict", operation="create")
            return False
        except API_FAILURES as error:
            self._log.warning("lease_write_failed", error=str(error))
            return False
        self._remember_write(lease, started)
        return True

    async def _lead_term(self, lead: Lead) -> None:
        """Run the work while renewing; whichever ends first ends the term for both."""
        work = asyncio.create_task(_call(lead), name=f"leader-work:{self._name}")
        renewer = asyncio.create_task(self._renewer(), name=f"lease-renewer:{self._name}")
        try:
            done, _ = await asyncio.wait({work, renewer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # The work stops first and at once: past this point another pod may lead.
            renewer.cancel()
            try:
                await _cancel_and_wait(work)
            finally:
                self._stop_leading()
                await _cancel_and_wait(renewer)
        if work in done:
            self._log_work_end(work)
            await self._release()
        else:
            self._log.warning("lease_lost", reason=renewer.result())

    async def _renewer(self) -> str:
        """Renew every retry period (client-go wait.Until); return why leadership was lost."""
        while True:
            await asyncio.sleep(self._retry_period)
            reason = await self._renew_round()
            if reason is not None:
                return reason

    async def _renew_round(self) -> str | None:
        """Retry every retry period until renewed, or until `renew_deadline` has passed since
        the last successful renewal started (client-go PollImmediateUntil on a timeout ctx)."""
        deadline = self._renewed_at + self._renew_deadline
        while True:
            outcome = await self._try_renew(deadline)
            if outcome is _Renewal.RENEWED:
                return None
            if outcome is _Renewal.HELD_BY_ANOTHER:
                return "held_by_another"
            remaining = deadline - self._clock()
            if remaining <= 0:
                return "renew_deadline_exceeded"
            await asyncio.sleep(min(self._retry_period, remaining))

    async def _try_renew(self, deadline: float) -> _Renewal:
        """client-go's fast path: write from the Lease we last wrote; on 409 its slow path:
        re-read, and renew only if the Lease still names us. No call outlives `deadline`."""
        started = self._clock()
        current = self._observed.record
        try:
            for fresh_read in (False, True):
                if fresh_read:
                    current = self._observe(
                        await leases.get_lease(
                            self._client,
                            self._namespace,
                            self._name,
                            timeout=self._timeout_until(deadline),
                        )
                    )
                if current is None or current.holder != self._identity:
                    return _Renewal.HELD_BY_ANOTHER
                renewed = record.renewing(current, now=self._wall_clock())
                # 409: our copy of the Lease is stale; the second pass re-reads it.
                with contextlib.suppress(errors.Conflict):
                    await self._put(renewed, started=started, timeout=self._timeout_until(deadline))
                    return _Renewal.RENEWED
        except (*API_FAILURES, _DeadlinePassed) as error:
            self._log.warning("lease_renew_failed", error=str(error) or "deadline passed")
        return _Renewal.FAILED

    async def _release(self) -> None:
        """Write the release record if a fresh read still names us (resourceVersion-guarded)."""
        try:
            async with asyncio.timeout(self._renew_deadline):
                lease = await leases.get_lease(
                    self._client, self._namespace, self._name, timeout=self._call_timeout
                )
                current = self._observe(lease)
                if current.holder != self._identity:
                    self._log.info("lease_release_skipped", reason="held_by_another")
                    return
                released = record.releasing(current, now=self._wall_clock())
                await self._put(released, started=self._clock(), timeout=self._call_timeout)
        except errors.Conflict:
            self._log.info("lease_release_skipped", reason="changed_since_read")
        except (*API_FAILURES, TimeoutError) as error:
            self._log.warning("lease_release_failed", error=str(error) or "timed out")
        else:
            self._log.info("lease_released")

    async def _put(self, wanted: record.LeaseRecord, *, started: float, timeout: float) -> None:
        """Replace the spec of the Lease last read or written, guarded by its resourceVersion."""
        assert self._lease is not None, "a Lease is always read or created before a replace"
        body = {**self._lease, "spec": record.to_spec(wanted)}
        written = await leases.replace_lease(self._client, body, timeout=timeout)
        self._remember_write(written, started)

    def _remember_write(self, lease: dict[str, Any], started: float) -> None:
        self._lease = lease
        self._observed.wrote(record.from_spec(lease.get("spec") or {}), self._clock())
        self._renewed_at = started

    def _observe(self, lease: dict[str, Any]) -> record.LeaseRecord:
        """Keep the Lease for the next write and note whether its record changed."""
        self._lease = lease
        current = record.from_spec(lease.get("spec") or {})
        previous = self._observed.record
        self._observed.observe(current, self._clock())
        if previous is None or previous.holder != current.holder:
            self._log.info("lease_holder_observed", holder=current.holder)
        return current

    def _seen_by_watch(self, lease: dict[str, Any]) -> None:
        """A version of the Lease the watch delivered, noted as a read would note it: the
        holder's lease then expires a lease duration after its renewal, not after this
        candidate's next poll. What to write still comes from a fresh read."""
        self._observed.observe(record.from_spec(lease.get("spec") or {}), self._clock())

    def _acquiring(self, current: record.LeaseRecord | None) -> record.LeaseRecord:
        return record.acquiring(
            current,
            identity=self._identity,
            lease_duration_seconds=self._lease_seconds,
            now=self._wall_clock(),
        )

    def _timeout_until(self, deadline: float) -> float:
        """The per-call timeout, never past `deadline`."""
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _DeadlinePassed
        return min(self._call_timeout, remaining)

    def _holds_lease(self) -> bool:
        """Did the last record seen or written name this identity? (client-go IsLeader)."""
        current = self._observed.record
        return current is not None and current.holder == self._identity

    def _stop_leading(self) -> None:
        if not self._leading.is_set():
            return
        self._leading.clear()
        self._metrics.leader.set(0)
        self._metrics.leader_transitions.labels(direction="lost").inc()

    def _log_work_end(self, work: asyncio.Task[None]) -> None:
        error = None if work.cancelled() else work.exception()
        if error is None:
            self._log.warning("leader_work_ended")
        else:
            self._log.error("leader_work_failed", exc_info=error)

    async def _sleep_until_next_attempt(self) -> None:
        """A jittered retry period, cut short to try right when the observed lease expires or
        the release watch sees the Lease released."""
        delay = self._retry_period * (1.0 + self._random.random() * JITTER_FACTOR)
        current, changed_at = self._observed.record, self._observed.changed_at
        if current is not None and current.holder and changed_at is not None:
            until_expiry = changed_at + current.lease_duration_seconds - self._clock()
            delay = min(delay, max(EXPIRY_MARGIN, until_expiry + EXPIRY_MARGIN))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._released.wait()

    def _read_version(self) -> str:
        """The resourceVersion of the Lease last read or written ("" before the first)."""
        metadata = (self._lease or {}).get("metadata") or {}
        return str(metadata.get("resourceVersion") or "")

    async def _sleep_jittered(self) -> None:
        """client-go wait.Jitter: retry_period stretched by up to JITTER_FACTOR."""
        jitter = 1.0 + self._random.random() * JITTER_FACTOR
        await asyncio.sleep(self._retry_period * jitter)


class _DeadlinePassed(Exception):
    """The renew deadline passed before the next call could start."""


async def _call(lead: Lead) -> None:
    await lead()


async def _cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has really ended, even if we are cancelled meanwhile."""
    task.cancel()
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            interrupted = True
    if not task.cancelled():
        task.exception()  # retrieved here; the caller reads it when it cares
    if interrupted:
        raise asyncio.CancelledError


def _check_timing(lease_seconds: int, renew_deadline: float, retry_period: float) -> None:
    """client-go NewLeaderElector's checks, so a follower never takes over a live leader.

    The Lease carries whole seconds, so the check uses the truncated duration others will see.
    """
    if lease_seconds < 1:
        raise ValueError(f"lease_duration must be at least 1 s: {lease_seconds}")
    if lease_seconds <= renew_deadline:
        raise ValueError(
            f"lease_duration ({lease_seconds} whole seconds) must exceed renew_deadline"
            f" ({renew_deadline})"
        )
    if renew_deadline <= TIMING_CHECK_FACTOR * retry_period:
        raise ValueError(
            f"renew_deadline {renew_deadline} must exceed retry_period * {TIMING_CHECK_FACTOR}"
        )
    if retry_period <= 0:
        raise ValueError(f"retry_period must be positive: {retry_period}")
