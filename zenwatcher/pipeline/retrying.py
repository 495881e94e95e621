"""API calls with client-side rate limiting and retries, on one schedule per operation.

429, 5xx and connection errors are retried with jittered backoff (Retry-After honoured) until the
budget's deadline; other errors fail at once as `WriteFailed`. A call whose answer was lost may
have been applied: with `retry_ambiguous=False` it raises `AmbiguousWrite` after the delay, so
the caller can read back instead of repeating it. A report job's budget carries its leadership
term, and stops before its next attempt once that term has ended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from zenwatcher.kube import errors
from zenwatcher.metrics import Metrics
from zenwatcher.pacing import Backoff, TokenBucket
from zenwatcher.pipeline.jobs import Term

T = TypeVar("T")
LEADERSHIP_LOST = "leadership_lost"  # failed{reason}: a report job of a term that ended
FORBIDDEN_GRACE = 30.0  # seconds a 403 is retried before it counts as final


class WriteFailed(Exception):
    """A write that did not succeed; `reason` is the metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AmbiguousWrite(Exception):
    """A write whose answer was lost: it may or may not have been applied."""


@dataclass(slots=True)
class RetryBudget:
    """One retry schedule: growing delays, when to give up, and the term it serves (if any)."""

    backoff: Backoff
    started: float
    deadline: float
    term: Term | None = None


class RetryingCaller:
    """Makes API calls through the rate limiter, retrying what may succeed later."""

    def __init__(self, *, limiter: TokenBucket, metrics: Metrics, retry_for: float) -> None:
        self._limiter = limiter
        self._metrics = metrics
        self._retry_for = retry_for

    def budget(self, term: Term | None) -> RetryBudget:
        """A fresh schedule: `retry_for` seconds from now."""
        started = time.monotonic()
        return RetryBudget(Backoff(base=0.2, cap=10.0), started, started + self._retry_for, term)

    async def call(
        self,
        operation: str,
        call: Callable[[], Awaitable[T]],
        *,
        budget: RetryBudget,
        retry_ambiguous: bool = True,
    ) -> T:
        """Rate-limited call with retries on 429 / 5xx / transport errors, within `budget`
        (several calls of one update share theirs).

        With `retry_ambiguous` False, an error after which the call may have been applied (a
        lost connection, a 5xx) raises `AmbiguousWrite` after the backoff delay instead.
        A report job whose leadership term ends meanwhile stops before its next attempt.
        """
        backoff, started, deadline = budget.backoff, budget.started, budget.deadline
        while True:
            if budget.term is not None and budget.term.ended:
                raise WriteFailed(LEADERSHIP_LOST, "its leadership term ended while retrying")
            await self._limiter.acquire()
            try:
                result = await call()
            except (errors.NotFound, errors.Conflict):
                self._metrics.api_writes.labels(operation, "conflict_or_missing").inc()
                raise
            except (errors.ApiError, errors.TransportError) as error:
                self._metrics.api_writes.labels(operation, "error").inc()
                if _too_large(error) or not (
                    errors.is_retriable(error) or _transient_forbidden(error, started)
                ):
                    raise WriteFailed(_reason(error), str(error)) from error
                delay = backoff.next_delay(hint=errors.retry_hint(error))
                if time.monotonic() + delay > deadline:
                    raise WriteFailed(_reason(error), f"gave up: {error}") from error
                self._metrics.api_retries.labels(operation, _reason(error)).inc()
                await asyncio.sleep(delay)
                if not retry_ambiguous and _ambiguous(error):
                    raise AmbiguousWrite(str(error)) from error
                continue
            self._metrics.api_writes.labels(operation, "ok").inc()
            return result


def _too_large(error: BaseException) -> bool:
    """etcd's refusal of an oversized object, which the API server answers as a 500: final."""
    return isinstance(error, errors.ApiError) and "too large" in error.message.lower()


def _ambiguous(error: BaseException) -> bool:
    """Whether the server may have applied the request before this error (429: it did not)."""
    if isinstance(error, errors.ApiError):
        return error.status >= 500
    return isinstance(error, errors.TransportError)


def _transient_forbidden(error: BaseException, started: float) -> bool:
    """A 403 in the first seconds of a call may be RBAC warming up (a restarted API server
    answers before its authorizer cache is filled; a fresh install binds roles after the pod
    starts), so it is retried briefly rather than losing the finding."""
    return isinstance(error, errors.Forbidden) and time.monotonic() - started < FORBIDDEN_GRACE


def _reason(error: BaseException) -> str:
    if isinstance(error, errors.ApiError):
        return f"http_{error.status}"
    return "transport"
