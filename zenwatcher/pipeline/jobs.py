"""Write jobs: what the intake and the report controller ask the writer to do.

Each job names the source it is accounted to, so the writer can put its event(s) in the
created / updated / failed bucket once the API has answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from zenwatcher.finding import Finding


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateJob:
    """A finding seen for the first time in this dedup window: create, or count a repeat on 409."""

    finding: Finding
    namespace: str
    seen_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class IncrementJob:
    """Repeats absorbed in memory, flushed to status.count/lastSeen (created if it vanished)."""

    finding: Finding
    namespace: str
    count_delta: int
    last_seen: datetime


@dataclass(slots=True)
class Term:
    """One leadership term, as report jobs carry it: once it has ended, what it queued and no
    writer has started is dropped, since the next leader reconciles from its own view (a late
    Resolve from an old term could otherwise override the new leader's Open). The writer tells
    the term of an Open it failed to write, so the term's ledger does not believe it done, and
    hands back an Open the etcd budget had no room for, to be written when there is."""

    ended: bool = False
    open_failed: Callable[[str], None] = field(default=lambda name: None)
    open_deferred: Callable[[OpenJob], None] = field(default=lambda job: None)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenJob:
    """A report finding that should be Open: create it, or reopen it if Resolved."""

    finding: Finding
    namespace: str
    seen_at: datetime
    term: Term | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolveJob:
    """No current report has this finding any more: mark it Resolved."""

    name: str
    namespace: str
    source: str
    resolved_at: datetime
    term: Term | None = None


WriteJob = CreateJob | IncrementJob | OpenJob | ResolveJob


def job_source(job: WriteJob) -> str:
    return job.source if isinstance(job, ResolveJob) else job.finding.source


def job_name(job: WriteJob) -> str:
    return job.name if isinstance(job, ResolveJob) else job.finding.name


def outlived_its_term(job: WriteJob) -> bool:
    """A report job whose leadership term has ended."""
    return isinstance(job, OpenJob | ResolveJob) and job.term is not None and job.term.ended
