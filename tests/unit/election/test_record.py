"""Lease arithmetic: spec round trips, expiry from the last observed change, records to write.

Time is a stepped fake monotonic clock, because expiry on the real monotonic clock cannot be
stepped by a test; the functions under test take `now` as an argument, so nothing else is faked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from zenwatcher.election import record

LEASE = 15
ME = "zen-watcher-a"
OTHER = "zen-watcher-b"
WALL = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
WALL_STAMP = "2026-03-04T05:06:07.123456Z"
LONG_AGO = "2001-01-01T00:00:00.000000Z"


class FakeClock:
    """Monotonic seconds that move only when a test steps them."""

    def __init__(self) -> None:
        self.now = 5000.0

    def step(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    """A fake monotonic clock: expiry must be checked without waiting 15 real seconds."""
    return FakeClock()


def held_by(
    holder: str, *, renew_time: str = WALL_STAMP, transitions: int = 3
) -> record.LeaseRecord:
    return record.LeaseRecord(
        holder=holder,
        lease_duration_seconds=LEASE,
        acquire_time=LONG_AGO,
        renew_time=renew_time,
        transitions=transitions,
    )


class TestSpec:
    def test_round_trip(self) -> None:
        """A record survives to_spec/from_spec unchanged."""
        original = held_by(ME)
        assert original == record.from_spec(record.to_spec(original))

    def test_spec_field_names(self) -> None:
        """The spec uses the coordination.k8s.io/v1 field names."""
        assert {
            "holderIdentity": ME,
            "leaseDurationSeconds": LEASE,
            "acquireTime": LONG_AGO,
            "renewTime": WALL_STAMP,
            "leaseTransitions": 3,
        } == record.to_spec(held_by(ME))

    def test_absent_fields(self) -> None:
        """An empty spec reads as client-go reads nil pointers: no holder, zeros, no times."""
        assert record.LeaseRecord(
            holder="", lease_duration_seconds=0, acquire_time=None, renew_time=None, transitions=0
        ) == record.from_spec({})

    def test_absent_times_are_not_written(self) -> None:
        """A record without times writes no time fields (the server would refuse null)."""
        spec = record.to_spec(record.from_spec({"holderIdentity": ME}))
        assert "acquireTime" not in spec
        assert "renewTime" not in spec

    def test_micro_time_format(self) -> None:
        """Times are written as MicroTime: six fractional digits, converted to UTC, with a Z."""
        assert WALL_STAMP == record.format_micro_time(WALL)
        plus_two = timezone(timedelta(hours=2))
        assert "2026-03-04T05:00:00.000000Z" == record.format_micro_time(
            datetime(2026, 3, 4, 7, 0, tzinfo=plus_two)
        )


class TestObservedLease:
    def test_nothing_observed_is_expired(self, clock: FakeClock) -> None:
        """With no observation at all there is no lease to honour."""
        assert record.ObservedLease().expired(clock.now, LEASE)

    def test_old_timestamps_just_observed_are_not_expired(self, clock: FakeClock) -> None:
        """A record whose renewTime is years old, seen for the first time now, is live."""
        observed = record.ObservedLease()
        observed.observe(held_by(OTHER, renew_time=LONG_AGO), clock.now)
        assert not observed.expired(clock.step(LEASE - 0.001), LEASE)

    def test_unchanged_record_expires_after_lease_duration(self, clock: FakeClock) -> None:
        """The same record seen again and again expires one lease after it first appeared."""
        observed = record.ObservedLease()
        stale = held_by(OTHER)
        observed.observe(stale, clock.now)
        for _ in range(5):
            assert not observed.observe(stale, clock.step(LEASE / 5 - 0.01))
        assert not observed.expired(clock.now, LEASE)
        assert observed.expired(clock.step(0.1), LEASE)

    def test_change_restarts_the_lease(self, clock: FakeClock) -> None:
        """A renewal (any change of the record) restarts the lease on the local clock."""
        observed = record.ObservedLease()
        observed.observe(held_by(OTHER, renew_time=LONG_AGO), clock.now)
        assert observed.observe(held_by(OTHER), clock.step(LEASE - 1))
        assert clock.now == observed.changed_at
        assert not observed.expired(clock.step(LEASE - 1), LEASE)
        assert observed.expired(clock.step(1), LEASE)

    def test_future_timestamps_do_not_extend_the_lease(self, clock: FakeClock) -> None:
        """A renewTime far in the future (a skewed clock) buys no extra time."""
        observed = record.ObservedLease()
        observed.observe(held_by(OTHER, renew_time="2999-01-01T00:00:00.000000Z"), clock.now)
        assert observed.expired(clock.step(LEASE), LEASE)

    def test_own_write_counts_as_observed(self, clock: FakeClock) -> None:
        """What this process wrote is a fresh observation, even if equal to the last one."""
        observed = record.ObservedLease()
        mine = held_by(ME)
        observed.observe(mine, clock.now)
        observed.wrote(mine, clock.step(10))
        assert clock.now == observed.changed_at


class TestCanAcquire:
    def test_no_lease(self, clock: FakeClock) -> None:
        """No Lease seen yet: create it."""
        assert record.can_acquire(record.ObservedLease(), identity=ME, now=clock.now)

    def test_no_holder(self, clock: FakeClock) -> None:
        """A released Lease can be taken at once, without waiting for expiry."""
        observed = record.ObservedLease()
        observed.observe(record.releasing(held_by(OTHER), now=WALL), clock.now)
        assert record.can_acquire(observed, identity=ME, now=clock.now)

    def test_own_lease(self, clock: FakeClock) -> None:
        """The holder may always renew its own Lease."""
        observed = record.ObservedLease()
        observed.observe(held_by(ME), clock.now)
        assert record.can_acquire(observed, identity=ME, now=clock.now)

    def test_live_lease_of_another(self, clock: FakeClock) -> None:
        """Another holder's Lease is honoured until it expires on the local clock."""
        observed = record.ObservedLease()
        observed.observe(held_by(OTHER, renew_time=LONG_AGO), clock.now)
        assert not record.can_acquire(observed, identity=ME, now=clock.step(LEASE - 0.5))
        assert record.can_acquire(observed, identity=ME, now=clock.step(0.5))

    def test_expiry_uses_the_records_duration(self, clock: FakeClock) -> None:
        """The holder's own leaseDurationSeconds decides, as in current client-go."""
        observed = record.ObservedLease()
        short = record.LeaseRecord(
            holder=OTHER,
            lease_duration_seconds=2,
            acquire_time=None,
            renew_time=None,
            transitions=0,
        )
        observed.observe(short, clock.now)
        assert record.can_acquire(observed, identity=ME, now=clock.step(2))


class TestRecordsToWrite:
    def test_first_holder(self) -> None:
        """Creating the Lease: zero transitions, both times now."""
        assert record.LeaseRecord(
            holder=ME,
            lease_duration_seconds=LEASE,
            acquire_time=WALL_STAMP,
            renew_time=WALL_STAMP,
            transitions=0,
        ) == record.acquiring(None, identity=ME, lease_duration_seconds=LEASE, now=WALL)

    def test_new_holder_counts_a_transition(self) -> None:
        """Taking over from another holder counts one transition and sets acquireTime."""
        taken = record.acquiring(
            held_by(OTHER, transitions=3), identity=ME, lease_duration_seconds=LEASE, now=WALL
        )
        assert (ME, 4, WALL_STAMP, WALL_STAMP) == (
            taken.holder,
            taken.transitions,
            taken.acquire_time,
            taken.renew_time,
        )

    def test_taking_a_released_lease_counts_a_transition(self) -> None:
        """A released Lease ("" holder) taken by anyone is a transition too (client-go)."""
        released = record.releasing(held_by(OTHER, transitions=7), now=WALL)
        assert (
            8
            == record.acquiring(
                released, identity=OTHER, lease_duration_seconds=LEASE, now=WALL
            ).transitions
        )

    def test_reacquiring_own_lease_keeps_count_and_acquire_time(self) -> None:
        """The holder re-taking its own Lease is no transition; acquireTime stays."""
        again = record.acquiring(
            held_by(ME, transitions=3), identity=ME, lease_duration_seconds=LEASE, now=WALL
        )
        assert (3, LONG_AGO, WALL_STAMP) == (
            again.transitions,
            again.acquire_time,
            again.renew_time,
        )

    def test_renewing_moves_only_renew_time(self) -> None:
        """A renewal changes renewTime and nothing else."""
        before = held_by(ME, renew_time=LONG_AGO)
        after = record.renewing(before, now=WALL)
        assert held_by(ME, renew_time=WALL_STAMP) == after

    def test_release(self) -> None:
        """Release as client-go writes it: no holder, a 1 s lease, times now, same count."""
        assert record.LeaseRecord(
            holder="",
            lease_duration_seconds=1,
            acquire_time=WALL_STAMP,
            renew_time=WALL_STAMP,
            transitions=3,
        ) == record.releasing(held_by(ME, transitions=3), now=WALL)

    def test_transitions_over_a_handover_sequence(self) -> None:
        """A → B (expiry) → B renews → B releases → A: two transitions after creation."""
        lease = record.acquiring(None, identity=ME, lease_duration_seconds=LEASE, now=WALL)
        lease = record.acquiring(lease, identity=OTHER, lease_duration_seconds=LEASE, now=WALL)
        lease = record.renewing(lease, now=WALL + timedelta(seconds=2))
        lease = record.releasing(lease, now=WALL + timedelta(seconds=3))
        lease = record.acquiring(lease, identity=ME, lease_duration_seconds=LEASE, now=WALL)
        assert (ME, 2) == (lease.holder, lease.transitions)
