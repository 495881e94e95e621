"""Lease arithmetic for leader election, pure: no I/O, clocks passed in (client-go semantics).

Expiry is judged only on the local monotonic clock, from the moment this process last saw the
record *change*; the record's own timestamps come from other hosts' clocks and are never
trusted, only compared for change. The record functions say what to write when acquiring,
renewing and releasing, including when `leaseTransitions` counts a new holder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# metav1.MicroTime's wire format ("2006-01-02T15:04:05.000000Z07:00", always in UTC here).
MICRO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# What client-go writes on release: a one-second lease nobody holds.
RELEASED_LEASE_SECONDS = 1


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRecord:
    """The leader-election fields of a Lease spec (client-go's LeaderElectionRecord)."""

    holder: str  # holderIdentity; "" when nobody holds the Lease
    lease_duration_seconds: int  # leaseDurationSeconds: how long others honour a renewal
    acquire_time: str | None  # acquireTime (MicroTime): when the current holder took it
    renew_time: str | None  # renewTime (MicroTime): the holder's last renewal
    transitions: int  # leaseTransitions: how many times the holder changed


def format_micro_time(moment: datetime) -> str:
    """An aware datetime in MicroTime format, in UTC."""
    return moment.astimezone(UTC).strftime(MICRO_TIME_FORMAT)


def from_spec(spec: Mapping[str, Any]) -> LeaseRecord:
    """The record in a Lease `.spec`; absent fields read as client-go reads nil pointers."""
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=spec.get("acquireTime"),
        renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def to_spec(record: LeaseRecord) -> dict[str, Any]:
    """A whole Lease `.spec` for `record` (client-go replaces the spec, it does not merge)."""
    spec: dict[str, Any] = {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "leaseTransitions": record.transitions,
    }
    if record.acquire_time is not None:
        spec["acquireTime"] = record.acquire_time
    if record.renew_time is not None:
        spec["renewTime"] = record.renew_time
    return spec


class ObservedLease:
    """The last record seen, and when (monotonic seconds) it was last seen to change.

    client-go's observedRecord/observedTime: a holder that keeps renewing keeps changing the
    record, so its lease never expires in the eyes of a follower, whatever the clocks say.
    """

    __slots__ = ("_changed_at", "_record")

    def __init__(self) -> None:
        self._record: LeaseRecord | None = None
        self._changed_at: float | None = None

    @property
    def record(self) -> LeaseRecord | None:
        return self._record

    @property
    def changed_at(self) -> float | None:
        return self._changed_at

    def observe(self, record: LeaseRecord, now: float) -> bool:
        """Remember a record read from the server; True when it differs from the last one."""
        if record == self._record:
            return False
        self._record = record
        self._changed_at = now
        return True

    def wrote(self, record: LeaseRecord, now: float) -> None:
        """Remember a record this process has just written: a fresh observation by definition."""
        self._record = record
        self._changed_at = now

    def expired(self, now: float, lease_duration: float) -> bool:
        """True once `lease_duration` seconds passed without a change (or nothing was seen)."""
        if self._changed_at is None:
            return True
        return now >= self._changed_at + lease_duration


def can_acquire(observed: ObservedLease, *, identity: str, now: float) -> bool:
    """May `identity` try to write itself as holder? (client-go tryAcquireOrRenew, step 3).

    Yes when there is no record or no holder, when the holder is `identity`, or when the
    holder's lease expired: `leaseDurationSeconds` of the record (as current client-go reads
    it) passed on the local clock since the record last changed.
    """
    current = observed.record
    if current is None or not current.holder or current.holder == identity:
        return True
    return observed.expired(now, current.lease_duration_seconds)


def acquiring(
    current: LeaseRecord | None, *, identity: str, lease_duration_seconds: int, now: datetime
) -> LeaseRecord:
    """The record to write to take (or keep) the Lease; a new holder counts one transition."""
    stamp = format_micro_time(now)
    if current is not None and current.holder == identity:
        return LeaseRecord(
            holder=identity,
            lease_duration_seconds=lease_duration_seconds,
            acquire_time=current.acquire_time,
            renew_time=stamp,
            transitions=current.transitions,
        )
    return LeaseRecord(
        holder=identity,
        lease_duration_seconds=lease_duration_seconds,
        acquire_time=stamp,
        renew_time=stamp,
        transitions=0 if current is None else current.transitions + 1,
    )


def renewing(current: LeaseRecord, *, now: datetime) -> LeaseRecord:
    """The holder's renewal: only renewTime moves."""
    return dataclasses.replace(current, renew_time=format_micro_time(now))


def releasing(current: LeaseRecord, *, now: datetime) -> LeaseRecord:
    """What client-go writes on release: no holder, a 1 s lease, both times now, same count."""
    stamp = format_micro_time(now)
    return LeaseRecord(
        holder="",
        lease_duration_seconds=RELEASED_LEASE_SECONDS,
        acquire_time=stamp,
        renew_time=stamp,
        transitions=current.transitions,
    )
