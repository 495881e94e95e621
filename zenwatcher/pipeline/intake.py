"""Event intake for push sources (Falco, audit): map → filter → dedup → write queue.

`EventIntake.process` is synchronous on purpose: it runs between the HTTP handler's capacity
check and its answer with no await in between, so the queue cannot fill up under it and the
answer's counts are exactly what happened to the request's events.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from zenwatcher.filters import rules
from zenwatcher.filters.droplog import DROP_LOG
from zenwatcher.filters.state import FilterState
from zenwatcher.finding import Finding
from zenwatcher.mapping.rejection import INTERNAL_ERROR, Ignored, Rejected, Skip
from zenwatcher.observation import observation_namespace
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.dedup import Decision, DedupCache
from zenwatcher.pipeline.jobs import CreateJob, WriteJob

logger = structlog.get_logger()

MAX_ERRORS_IN_ANSWER = 5
FILTERED = "filtered"
REJECTED = "rejected"
Drops = dict[tuple[str, str], int]  # (bucket, reason) -> events, counted per request
_NOW_UTC = functools.partial(datetime.now, UTC)  # one C call per request, not a lambda's frame


@dataclass(slots=True)
class Tally:
    """What happened to one request's events; the webhook's JSON answer."""

    accepted: int = 0
    deduplicated: int = 0
    filtered: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "accepted": self.accepted,
            "deduplicated": self.deduplicated,
            "filtered": self.filtered,
            "rejected": self.rejected,
        }
        if self.errors:
            answer["errors"] = self.errors
        return answer

    def reject(self, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS_IN_ANSWER:
            self.errors.append(message)


class EventIntake:
    """One push source's pipeline up to the write queue."""

    def __init__(
        self,
        *,
        source: str,
        map_event: Callable[[Any], Finding | Skip],
        filters: FilterState,
        dedup: DedupCache,
        accounting: Accounting,
        enqueue: Callable[[WriteJob], None],
        default_namespace: str,
        allowed_namespaces: frozenset[str] = frozenset(),
        in_scope: Callable[[str], bool] | None = None,
        wall_clock: Callable[[], datetime] = _NOW_UTC,
        repeat_key: Callable[[Any], Hashable | None] | None = None,
    ) -> None:
        self.source = source
        self._map_event = map_event
        self._filters = filters
        self._dedup = dedup
        self._accounting = accounting
        self._enqueue = enqueue
        self._default_namespace = default_namespace
        self._allowed_namespaces = allowed_namespaces
        self._in_scope = in_scope  # with a selector: the scope now, instead of the list
        self._wall_clock = wall_clock
        # The source's identity of an event read without mapping it (None: map it); what the
        # finding's dedup key would be, so a repeat is counted without building its finding.
        self._repeat_key = repeat_key
        self._judged: tuple[rules.FilterConfig, bool] | None = None  # passes_everything's, cached

    def process(self, events: list[Any]) -> Tally:
        """Account for every event; queue a write for each finding new to this window."""
        tally = Tally()
        now = self._wall_clock()
        source, dedup = self.source, self._dedup
        # Counted per request, not per event: one metric call per reason, not per event.
        drops: Drops = {}  # a plain dict: building a collections.Counter costs more
        # Repeats skip the mapping only where nothing but the mapping could drop them: no
        # filter applies to this source and no namespace scope is set.
        repeat_key = (
            self._repeat_key
            if self._in_scope is None
            and not self._allowed_namespaces
            and self._passes_everything(self._filters.config)
            else None
        )
        try:
            for index, event in enumerate(events):
                try:
                    if repeat_key is not None:
                        identity = repeat_key(event)
                        if identity is not None and dedup.repeat((source, identity), now_wall=now):
                            tally.deduplicated += 1
                            continue
                    self._process_one(event, index, now, tally, drops)
                except Exception:
                    # A bug met by one event (a mapper raising what it should have rejected)
                    # costs that event only: counted, logged, the rest of the request goes on.
                    logger.exception("event_processing_failed", source=self.source, index=index)
                    drop = (REJECTED, INTERNAL_ERROR)
                    drops[drop] = drops.get(drop, 0) + 1
                    tally.reject(f"event {index}: internal error")
        finally:  # even if a bug stops the loop, what was queued stays accounted for
            self._account(len(events), tally, drops)
        return tally

    def _passes_everything(self, config: rules.FilterConfig) -> bool:
        """`rules.passes_everything` for this source, judged once per configuration (a reload
        replaces the configuration object, so a new one is judged afresh)."""
        judged = self._judged
        if judged is None or judged[0] is not config:
            judged = self._judged = (config, rules.passes_everything(config, self.source))
        return judged[1]

    def _process_one(
        self, event: Any, index: int, now: datetime, tally: Tally, drops: Drops
    ) -> None:
        try:
            finding = self._map_event(event)
        except Ignored as ignored:
            finding = ignored.as_skip()
        except Rejected as rejected:
            drop = (REJECTED, rejected.reason)
            drops[drop] = drops.get(drop, 0) + 1
            tally.reject(f"event {index}: {rejected}")
            return
        if isinstance(finding, Skip):
            drop = (FILTERED, finding.reason)
            drops[drop] = drops.get(drop, 0) + 1
            tally.filtered += 1
            return
        config = self._filters.config
        reason = rules.evaluate(config, finding)
        if reason is not None:
            DROP_LOG.dropped(config, finding, reason)
        else:
            reason = self._out_of_scope(finding)
        if reason is not None:
            drop = (FILTERED, reason)
            drops[drop] = drops.get(drop, 0) + 1
            tally.filtered += 1
            return
        namespace = observation_namespace(finding, default_namespace=self._default_namespace)
        # (source, identity) names one Observation: its name is a hash of the same, and its
        # namespace is read from fields the identity holds.
        key = (finding.source, finding.identity)
        if self._dedup.observe(key, now_wall=now, payload=finding) is Decision.REPEAT:
            tally.deduplicated += 1
            return
        self._enqueue(CreateJob(finding=finding, namespace=namespace, seen_at=now))
        tally.accepted += 1

    def _account(self, received: int, tally: Tally, drops: Drops) -> None:
        accounting, source = self._accounting, self.source
        accounting.received(source, received)
        if tally.deduplicated:
            accounting.deduplicated(source, tally.deduplicated)
        for (bucket, reason), count in drops.items():
            if bucket == FILTERED:
                accounting.filtered(source, reason, count)
            else:
                accounting.rejected(source, reason, count)

    def _out_of_scope(self, finding: Finding) -> str | None:
        """With WATCH_NAMESPACE or WATCH_NAMESPACE_SELECTOR set, findings for other namespaces
        are not ours to write."""
        if self._in_scope is not None and finding.namespace:
            return None if self._in_scope(finding.namespace) else "out_of_scope"
        if not self._allowed_namespaces or not finding.namespace:
            return None
        return None if finding.namespace in self._allowed_namespaces else "out_of_scope"
