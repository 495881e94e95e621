"""Each audited request judged once, by auditID (docs/design.md §4), whatever stages the policy
keeps.

A streaming request (exec, attach, portforward) is judged at the first of its stages that
arrives: ResponseStarted normally, ResponseComplete when the audit policy omits ResponseStarted
(`omitStages`), which `judge_audit_event`'s default would filter as `stage` and so lose every exec.
The auditIDs judged are remembered for a day, at most `max_size` of them, oldest forgotten
first; a session that outlives that is counted once more when it ends (same Observation).
Normal requests have one judged stage and need no memory. One event loop owns an instance.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from zenwatcher.finding import Finding
from zenwatcher.mapping.audit.events import STREAMING_AT_ANY, is_streaming, judge_audit_event
from zenwatcher.mapping.rejection import Skip

DEFAULT_TTL_SECONDS = 24 * 3600.0
DEFAULT_MAX_SIZE = 10_000  # about 2 MB of auditIDs; exec sessions are rare next to other requests


class AuditJudgedOnce:
    """The audit mapper with a memory of the streaming requests it judged."""

    def __init__(
        self,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_size: int = DEFAULT_MAX_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max_size = max_size
        self._clock = clock
        self._judged: OrderedDict[str, float] = OrderedDict()  # auditID -> when judged

    def __len__(self) -> int:
        return len(self._judged)

    def __call__(self, event: Any) -> Finding:
        """The finding, or `Ignored`/`Rejected` raised (what `zen-watcher convert` reports)."""
        judged = self.judge(event)
        if isinstance(judged, Skip):
            raise judged.as_ignored()
        return judged

    def judge(self, event: Any) -> Finding | Skip:
        """The finding, or a `Skip` for an event that is not one (the webhook intake's form,
        `judge_audit_event`'s); `Rejected` is raised."""
        finding = judge_audit_event(event, streaming_judged_at=STREAMING_AT_ANY)
        # Only findings go on (most events are skipped above), so this check is rare.
        if isinstance(finding, Finding) and is_streaming(event):
            audit_id: str = event["auditID"]  # judge_audit_event checked it is a string
            if not self._judge_once(audit_id):
                return Skip("stage", lambda: f"request {audit_id} was judged at an earlier stage")
        return finding

    def _judge_once(self, audit_id: str) -> bool:
        """Remember `audit_id` as judged now; False if it already was."""
        now = self._clock()
        self._forget_expired(now)
        if audit_id in self._judged:
            return False
        if len(self._judged) >= self._max_size:
            self._judged.popitem(last=False)
        self._judged[audit_id] = now
        return True

    def _forget_expired(self, now: float) -> None:
        judged = self._judged
        while judged:
            audit_id, when = next(iter(judged.items()))
            if now - when < self._ttl:
                return
            del judged[audit_id]
