"""The etcd budget: how many Observations this instance's scope, and each namespace, may hold.

Observations live in etcd, and a full etcd stops the whole control plane, so new findings are
checked against two limits before they are created: OBSERVATION_BUDGET for the instance's
scope and OBSERVATION_BUDGET_PER_NAMESPACE for any one namespace (docs/design.md §7). The least
severe wait first: a finding is admitted while usage stays below its severity's share of the
limit (info 80 %, low 85 %, medium 90 %, high 95 %, critical 100 %), so the last room is kept for
what matters most. Repeats of existing Observations are never refused: they add no object.

Usage is counted by the API server (a one-item list answers how many remain), refreshed every
few seconds by `run`; creates this process made since the last count are added locally. Other
replicas' creates show up at the next count, so a fleet can overshoot by what it creates in one
refresh period.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from zenwatcher.finding import Severity
from zenwatcher.kube import errors

logger = structlog.get_logger()

# The share of a limit up to which each severity is still admitted.
SHARE = {
    Severity.INFO: 0.80,
    Severity.LOW: 0.85,
    Severity.MEDIUM: 0.90,
    Severity.HIGH: 0.95,
    Severity.CRITICAL: 1.00,
}
REFRESH_SECONDS = 10.0
MAX_NAMESPACES_PER_REFRESH = 100  # the namespaces written since the last count, at most
INSTANCE = "instance"
NAMESPACE = "namespace"

Counter = Callable[[str | None], Awaitable[int]]  # namespace (None: the scope) -> Observations


def admits(used: int, limit: int, severity: Severity) -> bool:
    """Whether one more Observation of `severity` fits: usage stays within its share of
    `limit` (0 = no limit)."""
    return limit <= 0 or used + 1 <= limit * SHARE[severity]


def _free(used: int, limit: int, severity: Severity) -> int:
    if limit <= 0:
        return 2**31
    return max(0, int(limit * SHARE[severity]) - used)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a new finding was not written: which limit (`instance` or `namespace`) and usage."""

    scope: str
    used: int
    limit: int


class Budget:
    """Usage of this instance's scope and of the namespaces it writes, against the limits."""

    def __init__(
        self,
        *,
        total_limit: int,
        namespace_limit: int,
        count: Counter,
        scope: tuple[str, ...] | Callable[[], tuple[str, ...]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_limit = total_limit
        self.namespace_limit = namespace_limit
        self._count = count
        self._scope = scope  # () = the whole cluster; a callable: the scope now (a selector)
        self._clock = clock
        self.total_used = 0
        self._namespace_used: dict[str, int] = {}
        self._touched: set[str] = set()  # namespaces written or refused since the last count
        self.counted = False  # until the first count, usage is unknown and nothing is refused

    @property
    def enabled(self) -> bool:
        return self.total_limit > 0 or self.namespace_limit > 0

    def reserve(self, namespace: str, severity: Severity) -> Refusal | None:
        """None when a new Observation of `severity` in `namespace` fits, and then its place
        is taken at once (writers check concurrently); else the refusal. A place whose create
        did not add an object is given back with `release`."""
        if not self.enabled:
            return None
        self._touched.add(namespace)
        if self.counted:
            if not admits(self.total_used, self.total_limit, severity):
                return Refusal(INSTANCE, self.total_used, self.total_limit)
            used = self._namespace_used.get(namespace, 0)
            if not admits(used, self.namespace_limit, severity):
                return Refusal(NAMESPACE, used, self.namespace_limit)
        self.hold(namespace)
        return None

    def hold(self, namespace: str) -> None:
        """Take a place whatever the limits (a write that turns out to add no object, and
        gives it back with `release`)."""
        self.total_used += 1
        self._namespace_used[namespace] = self._namespace_used.get(namespace, 0) + 1

    def release(self, namespace: str) -> None:
        """A reserved place whose create added no object (it existed, or the write failed)."""
        if not self.enabled:
            return
        self.total_used = max(0, self.total_used - 1)
        self._namespace_used[namespace] = max(0, self._namespace_used.get(namespace, 0) - 1)

    def has_room(self, severity: Severity = Severity.INFO, namespace: str | None = None) -> bool:
        """Whether the instance (and `namespace`, when given) admits `severity` again."""
        return self.room(severity, namespace) > 0

    def room(self, severity: Severity, namespace: str | None = None) -> int:
        """How many more Observations of `severity` the instance (and `namespace`, when given)
        admits now; a large number without limits."""
        free = _free(self.total_used, self.total_limit, severity)
        if namespace is not None:
            used = self._namespace_used.get(namespace, 0)
            free = min(free, _free(used, self.namespace_limit, severity))
        return free

    def fullest_namespace_ratio(self) -> float:
        """Usage of the fullest counted namespace against its limit (0 without a limit)."""
        if self.namespace_limit <= 0 or not self._namespace_used:
            return 0.0
        return max(self._namespace_used.values()) / self.namespace_limit

    def total_ratio(self) -> float:
        return self.total_used / self.total_limit if self.total_limit > 0 else 0.0

    async def refresh(self) -> None:
        """Count the scope, and the namespaces written since the last count."""
        scope = self._scope() if callable(self._scope) else self._scope
        if scope:
            total = 0
            counted: dict[str, int] = {}
            for namespace in scope:
                counted[namespace] = await self._count(namespace)
                total += counted[namespace]
            # Only the namespaces in scope now: one that left no longer fills our budget.
            self._namespace_used = counted
        else:
            total = await self._count(None)
            # Only namespaces written since: no other can have grown by our hand.
            for namespace in sorted(self._touched)[:MAX_NAMESPACES_PER_REFRESH]:
                self._namespace_used[namespace] = await self._count(namespace)
        self.total_used = total
        self._touched.clear()
        self.counted = True

    async def run(self, *, interval: float = REFRESH_SECONDS) -> None:
        """Forever: count again every `interval` seconds (a failed count keeps the last one)."""
        while True:
            try:
                await self.refresh()
            except (errors.ApiError, errors.TransportError) as error:
                logger.warning("budget_count_failed", error=str(error))
            await asyncio.sleep(interval)
