"""The dedup cache: FIRST and REPEAT, window expiry, flushes of absorbed counts, eviction."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from zenwatcher.pipeline import dedup

WINDOW = 10.0
# A key is due between one window and one window plus a slice after its last write.
LATEST_DUE = WINDOW * (1 + 1 / dedup.SLICES_PER_WINDOW) + 0.01
START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
FIRST = dedup.Decision.FIRST
REPEAT = dedup.Decision.REPEAT


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def wall(self) -> datetime:
        """The wall time matching `now`, for `now_wall`."""
        return START + timedelta(seconds=self.now - 1000.0)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock, because the real monotonic clock cannot be stepped by a test."""
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> dedup.DedupCache:
    """A cache with a 10 s window and room for 100 keys, on the fake clock."""
    return dedup.DedupCache(window_seconds=WINDOW, max_size=100, clock=clock)


def see(cache: dedup.DedupCache, clock: FakeClock, key: str, payload: object = None) -> object:
    return cache.observe(key, now_wall=clock.wall, payload=payload)


class TestObserve:
    def test_first_then_repeat(self, cache: dedup.DedupCache, clock: FakeClock) -> None:
        """A key is FIRST when new and REPEAT while cached."""
        assert FIRST == see(cache, clock, "falco-1")
        assert REPEAT == see(cache, clock, "falco-1")
        assert REPEAT == see(cache, clock, "falco-1")

    def test_keys_are_independent(self, cache: dedup.DedupCache, clock: FakeClock) -> None:
        """Different keys are each FIRST once."""
        assert [FIRST, FIRST, REPEAT] == [see(cache, clock, key) for key in ("a", "b", "a")]

    def test_len_counts_keys(self, cache: dedup.DedupCache, clock: FakeClock) -> None:
        """len() is the number of cached keys, not of observations."""
        for key in ("a", "b", "a", "a"):
            see(cache, clock, key)
        assert 2 == len(cache)

    @pytest.mark.parametrize(("window", "size"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
    def test_rejects_bad_limits(self, window: float, size: int) -> None:
        """A window or size that is not positive is a configuration error."""
        with pytest.raises(ValueError, match="must be"):
            dedup.DedupCache(window_seconds=window, max_size=size)


class TestExpiry:
    def test_unrepeated_key_expires_after_window(
        self, cache: dedup.DedupCache, clock: FakeClock
    ) -> None:
        """A key with nothing absorbed is forgotten a window after its write."""
        see(cache, clock, "a")
        clock.advance(LATEST_DUE)
        assert FIRST == see(cache, clock, "a")

    def test_key_is_kept_for_a_full_window(self, cache: dedup.DedupCache, clock: FakeClock) -> None:
        """Within one window of its write, a key is still a REPEAT."""
        see(cache, clock, "a")
        clock.advance(WINDOW)
        assert REPEAT == see(cache, clock, "a")

    def test_expired_keys_leave_the_cache(self, cache: dedup.DedupCache, clock: FakeClock) -> None:
        """Expired keys stop counting towards len() on the next call."""
        see(cache, clock, "a")
        see(cache, clock, "b")
        clock.advance(LATEST_DUE)
        assert [] == cache.due_flushes()
        assert 0 == len(cache)

    def test_repeating_key_stays_cached(self, cache: dedup.DedupCache, clock: FakeClock) -> None:
        """A key that keeps repeating is flushed each window but never FIRST again."""
        decisions = []
        for _ in range(60):
            decisions.append(see(cache, clock, "a"))
            cache.due_flushes()
            clock.advance(1)
        assert [FIRST] + [REPEAT] * 59 == decisions


class TestDueFlushes:
    def test_nothing_due_within_window(self, cache: dedup.DedupCache, clock: FakeClock) -> None:
        """Absorbed repeats are held for a window after the key's write."""
        see(cache, clock, "a")
        see(cache, clock, "a")
        clock.advance(WINDOW)
        assert [] == cache.due_flushes()

    def test_flush_after_window(self, cache: dedup.DedupCache, clock: FakeClock) -> None:
        """After a window, the absorbed count comes back with the last time and first payload."""
        payload = object()
        see(cache, clock, "a", payload)
        clock.advance(2)
        see(cache, clock, "a", object())
        clock.advance(3)
        last = clock.wall
        see(cache, clock, "a", object())
        clock.advance(LATEST_DUE - 5)
        assert [dedup.Flush("a", 2, last, payload)] == cache.due_flushes()

    def test_count_is_reset_by_flush(self, cache: dedup.DedupCache, clock: FakeClock) -> None:
        """A flushed count is handed out once."""
        see(cache, clock, "a")
        see(cache, clock, "a")
        clock.advance(LATEST_DUE)
        assert 1 == len(cache.due_flushes())
        clock.advance(LATEST_DUE)
        assert [] == cache.due_flushes()

    def test_one_flush_per_window(self, cache: dedup.DedupCache, clock: FakeClock) -> None:
        """After a flush, new repeats wait a full window from that flush."""
        see(cache, clock, "a")
        see(cache, clock, "a")
        clock.advance(LATEST_DUE)
        assert 1 == len(cache.due_flushes())
        see(cache, clock, "a")
        clock.advance(WINDOW)
        assert [] == cache.due_flushes()
        clock.advance(LATEST_DUE - WINDOW)
        assert [1] == [flush.count_delta for flush in cache.due_flushes()]

    def test_key_without_repeats_is_never_flushed(
        self, cache: dedup.DedupCache, clock: FakeClock
    ) -> None:
        """A key seen once needs no flush: its create already wrote it."""
        see(cache, clock, "a")
        clock.advance(LATEST_DUE)
        assert [] == cache.due_flushes()

    def test_steady_stream_costs_one_write_per_window(
        self, cache: dedup.DedupCache, clock: FakeClock
    ) -> None:
        """One event a second for 100 s: writes a window apart, and every event counted."""
        writes = []  # (seconds since start, occurrences written)
        for second in range(100):
            if see(cache, clock, "a") == FIRST:
                writes.append((second, 1))
            writes.extend((second, flush.count_delta) for flush in cache.due_flushes())
            clock.advance(1)
        gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(writes)]
        drained = sum(flush.count_delta for flush in cache.drain())
        assert all(gap >= WINDOW for gap in gaps)
        assert len(writes) <= 100 / WINDOW + 1
        assert 100 == sum(count for _, count in writes) + drained

    def test_pending_repeats_count_what_no_flush_has_carried_yet(self, clock: FakeClock) -> None:
        """The gauge behind zen_watcher_dedup_pending_repeats: up with each repeat, down by
        what each handed-out flush carries, whether due, evicted or drained."""
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=2, clock=clock)
        for key in ("a", "a", "a", "b", "b"):
            see(cache, clock, key)
        assert 3 == cache.pending_repeats
        clock.advance(WINDOW * 1.1)
        see(cache, clock, "c")  # due keys settle: flushes found, not yet handed out
        assert 3 == cache.pending_repeats
        assert 3 == sum(flush.count_delta for flush in cache.due_flushes())
        assert 0 == cache.pending_repeats
        see(cache, clock, "c")
        see(cache, clock, "d")  # evicts "b", which has nothing pending
        assert 1 == cache.pending_repeats
        see(cache, clock, "d")
        assert 2 == sum(flush.count_delta for flush in cache.drain())
        assert 0 == cache.pending_repeats


class TestEviction:
    def test_oldest_written_key_is_evicted(self, clock: FakeClock) -> None:
        """At max_size, a new key pushes out the key written longest ago."""
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=2, clock=clock)
        for key in ("a", "b"):
            see(cache, clock, key)
            clock.advance(1)
        assert FIRST == see(cache, clock, "c")
        assert 2 == len(cache)
        assert REPEAT == see(cache, clock, "b")
        assert FIRST == see(cache, clock, "a")

    def test_evicted_pending_count_is_kept(self, clock: FakeClock) -> None:
        """An evicted key's absorbed count comes back from the next due_flushes, at once."""
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=1, clock=clock)
        see(cache, clock, "a", "payload-a")
        see(cache, clock, "a")
        last = clock.wall
        see(cache, clock, "a")
        see(cache, clock, "b")
        assert [dedup.Flush("a", 2, last, "payload-a")] == cache.due_flushes()
        assert [] == cache.due_flushes()

    def test_evicted_key_without_repeats_needs_no_flush(self, clock: FakeClock) -> None:
        """Evicting a key with nothing absorbed produces no flush."""
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=1, clock=clock)
        see(cache, clock, "a")
        see(cache, clock, "b")
        assert [] == cache.due_flushes()

    def test_size_stays_bounded(self, clock: FakeClock) -> None:
        """However many keys arrive, at most max_size are cached."""
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=50, clock=clock)
        for index in range(1000):
            see(cache, clock, f"k{index}")
            see(cache, clock, f"k{index}")
        assert 50 == len(cache)
        assert 950 == len(cache.due_flushes())


class TestDrain:
    def test_returns_everything_pending(self, cache: dedup.DedupCache, clock: FakeClock) -> None:
        """drain() hands out every absorbed count, due or not."""
        for key in ("a", "a", "b", "c", "c", "c"):
            see(cache, clock, key)
        counts = {flush.key: flush.count_delta for flush in cache.drain()}
        assert {"a": 1, "c": 2} == counts

    def test_keys_stay_cached(self, cache: dedup.DedupCache, clock: FakeClock) -> None:
        """After drain() the keys are still known, with nothing pending."""
        see(cache, clock, "a")
        see(cache, clock, "a")
        cache.drain()
        assert [] == cache.drain()
        assert REPEAT == see(cache, clock, "a")

    def test_includes_evicted_counts(self, clock: FakeClock) -> None:
        """Counts of evicted keys not yet handed out are part of the drain."""
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=1, clock=clock)
        for key in ("a", "a", "b", "b", "b"):
            see(cache, clock, key)
        counts = {flush.key: flush.count_delta for flush in cache.drain()}
        assert {"a": 1, "b": 2} == counts
