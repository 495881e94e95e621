"""The sources zen-watcher knows, in one table: the push sources (webhooks) with their route, the
way a body splits into events and the mapper of one event, and the report tools.

The daemon builds an intake per push source, the HTTP edge a route per push source, and
`zen-watcher convert` accepts every source named here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zenwatcher.finding import Finding
from zenwatcher.mapping import audit, falco
from zenwatcher.mapping.audit.once import AuditJudgedOnce
from zenwatcher.mapping.rejection import Skip
from zenwatcher.mapping.reports.kinds import REPORT_TOOLS


@dataclass(frozen=True, slots=True, kw_only=True)
class PushSource:
    """A tool that posts its events to us."""

    name: str
    path: str  # the webhook route
    split: Callable[[Any], list[Any]]  # a decoded body -> its events (Rejected when malformed)
    # A fresh mapper of one event: the audit mapper remembers which requests it judged, so each
    # intake (and each `convert` run) has its own. It answers a finding, or a `Skip` for a
    # common outcome that is not one; it raises `Rejected` (and rarer `Ignored` verdicts).
    new_mapper: Callable[[], Callable[[Any], Finding | Skip]]
    # An event's identity read without mapping it, so the intake counts a repeat cheaply (None
    # when the source has no such reading; `falco.falco_repeat_key` documents the contract).
    repeat_key: Callable[[Any], tuple[str, ...] | None] | None = None


PUSH_SOURCES: tuple[PushSource, ...] = (
    PushSource(
        name="falco",
        path="/falco/webhook",
        split=falco.split_falco_body,
        new_mapper=lambda: falco.map_falco_alert,
        repeat_key=falco.falco_repeat_key,
    ),
    PushSource(
        name="audit",
        path="/audit/webhook",
        split=audit.split_audit_body,
        new_mapper=lambda: AuditJudgedOnce().judge,
    ),
)
PUSH_SOURCE_NAMES: tuple[str, ...] = tuple(source.name for source in PUSH_SOURCES)
# Every source `convert` reads: the push sources, then the report tools.
ALL_SOURCE_NAMES: tuple[str, ...] = (*PUSH_SOURCE_NAMES, *REPORT_TOOLS)


def push_source(name: str) -> PushSource:
    """The push source called `name` (KeyError for any other)."""
    for source in PUSH_SOURCES:
        if source.name == name:
            return source
    raise KeyError(name)
