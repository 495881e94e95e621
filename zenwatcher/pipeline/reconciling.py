"""Report reconciliation as bookkeeping: desired findings per report vs Observations that exist.

Desired state is the findings of the current reports (after filters); actual state is the
Observations carrying an origin label. The ledger answers what to write: create what is
missing, reopen what was Resolved, leave alone what is already Open (no write after a restart
or relist), and resolve what no report wants any more — after a grace period, so trivy's
delete-and-recreate and Kyverno's momentarily empty reports do not flap Observations.
Pure: the clock is injected; the controller does the I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from zenwatcher.finding import Finding
from zenwatcher.observation import Existing, Phase

Scope = tuple[str, str]  # (report kind, namespace or "" for cluster scope / all namespaces)


@dataclass(frozen=True, slots=True)
class Open:
    """Create the Observation, or reopen it if it exists Resolved."""

    finding: Finding
    namespace: str


@dataclass(frozen=True, slots=True)
class Resolve:
    """Mark the Observation Resolved: no current report has this finding."""

    name: str
    namespace: str
    source: str


@dataclass(slots=True)
class Verdict:
    """What one report event asks for: writes, and how many findings needed none."""

    opens: list[Open] = field(default_factory=list)
    unchanged: int = 0


class Ledger:
    """Desired names per report origin, known Observations, and resolutions waiting out grace."""

    def __init__(
        self, *, grace_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._grace = grace_seconds
        self._clock = clock
        self._desired: dict[str, dict[str, tuple[str, str]]] = {}  # origin -> name -> (ns, source)
        self._wanted_by: dict[str, set[str]] = {}  # name -> origins that want it
        self._origins: dict[Scope, set[str]] = {}  # informer scope -> origins seen there
        self._existing: dict[str, Existing] = {}
        self._pending: dict[str, float] = {}  # name -> monotonic deadline for resolving

    def __len__(self) -> int:
        return len(self._existing)

    def know(self, name: str, existing: Existing) -> None:
        """Record an Observation read from the API (start of a leadership term). Resolved ones
        need no memory: a finding that comes back is opened, and the writer reopens it."""
        if existing.phase is Phase.OPEN:
            self._existing[name] = existing

    def is_wanted(self, name: str) -> bool:
        """Whether some current report has this finding."""
        return bool(self._wanted_by.get(name))

    def opened(self, finding: Finding, namespace: str) -> None:
        """An Open is queued for `finding` outside a report event (a deferred one, retried)."""
        self._existing[str(finding.name)] = Existing(
            namespace=namespace, phase=Phase.OPEN, source=finding.source
        )

    def forget(self, name: str) -> None:
        """The Observation is not as recorded (its Open write failed): the next report event
        that has the finding opens it again."""
        self._existing.pop(name, None)

    def report_seen(
        self, *, scope: Scope, origin: str, findings: Iterable[tuple[Finding, str]]
    ) -> Verdict:
        """A report was listed, added or modified: its findings are now exactly `findings`."""
        self._origins.setdefault(scope, set()).add(origin)
        verdict = Verdict()
        before = self._desired.get(origin, {})
        now_desired: dict[str, tuple[str, str]] = {}
        for finding, namespace in findings:
            name = str(finding.name)
            now_desired[name] = (namespace, finding.source)
            self._wanted_by.setdefault(name, set()).add(origin)
            self._pending.pop(name, None)
            existing = self._existing.get(name)
            if existing is not None and existing.phase is Phase.OPEN:
                verdict.unchanged += 1
                continue
            verdict.opens.append(Open(finding=finding, namespace=namespace))
            self._existing[name] = Existing(
                namespace=namespace, phase=Phase.OPEN, source=finding.source
            )
        self._desired[origin] = now_desired
        for name in before.keys() - now_desired.keys():
            self._unwant(name, origin)
        return verdict

    def report_deleted(self, *, scope: Scope, origin: str) -> None:
        """A report is gone: its findings start their grace period."""
        self._origins.get(scope, set()).discard(origin)
        for name in self._desired.pop(origin, {}):
            self._unwant(name, origin)

    def listed(self, *, scope: Scope, present: set[str]) -> None:
        """After a (re)list of `scope`: origins seen there before but absent now were deleted."""
        for origin in self._origins.get(scope, set()) - present:
            self.report_deleted(scope=scope, origin=origin)

    def forget_namespace(self, namespace: str, *, observations_too: bool = True) -> int:
        """The reports of `namespace` left this instance's scope: forget their origins and the
        findings only they wanted, resolving nothing (whoever gains the namespace reconciles
        them at its next list). With `observations_too`, forget every Observation known in the
        namespace as well, orphans waiting out their grace included. Answers the origins
        forgotten."""
        forgotten = 0
        for scope in [scope for scope in self._origins if scope[1] == namespace]:
            for origin in self._origins.pop(scope):
                forgotten += 1
                for name in self._desired.pop(origin, {}):
                    wanters = self._wanted_by.get(name, set())
                    wanters.discard(origin)
                    if not wanters:
                        self._wanted_by.pop(name, None)
                        self._existing.pop(name, None)
                        self._pending.pop(name, None)
        if observations_too:
            for name in [n for n, e in self._existing.items() if e.namespace == namespace]:
                if not self._wanted_by.get(name):
                    del self._existing[name]
                    self._pending.pop(name, None)
        return forgotten

    def orphans_after_sync(self, namespace: str | None = None) -> None:
        """Once every informer has listed (of `namespace` only, when given): Open Observations
        no report wants start their grace."""
        for name, existing in self._existing.items():
            if namespace is not None and existing.namespace != namespace:
                continue
            if existing.phase is Phase.OPEN and not self._wanted_by.get(name):
                self._pending.setdefault(name, self._clock() + self._grace)

    def due_resolutions(self) -> list[Resolve]:
        """Resolutions whose grace has passed and that no report wants back."""
        now = self._clock()
        due = [name for name, deadline in self._pending.items() if deadline <= now]
        resolutions = []
        for name in due:
            del self._pending[name]
            existing = self._existing.get(name)
            if existing is None or existing.phase is Phase.RESOLVED or self._wanted_by.get(name):
                continue
            # Forgotten once resolved, so a long term's ledger holds the Open findings only.
            del self._existing[name]
            resolutions.append(
                Resolve(name=name, namespace=existing.namespace, source=existing.source)
            )
        return resolutions

    def pending_count(self) -> int:
        return len(self._pending)

    def _unwant(self, name: str, origin: str) -> None:
        wanters = self._wanted_by.get(name)
        if wanters is not None:
            wanters.discard(origin)
            if wanters:
                return  # another report still has this finding
            del self._wanted_by[name]
        if name in self._existing:
            self._pending.setdefault(name, self._clock() + self._grace)
