"""The dedup cache: FIRST and REPEAT, window expiry, flushes of absorbed counts, LRU eviction."""

from __future__ import annotations

import gc
import itertools
import random
import tracemalloc
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


def see(
    cache: dedup.DedupCache, clock: FakeClock, key: dedup.Key, payload: object = None
) -> object:
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
    def test_least_recently_observed_key_is_evicted(self, clock: FakeClock) -> None:
        """At max_size, a new key pushes out the key observed longest ago."""
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=2, clock=clock)
        for key in ("a", "b"):
            see(cache, clock, key)
            clock.advance(1)
        assert FIRST == see(cache, clock, "c")
        assert 2 == len(cache)
        assert REPEAT == see(cache, clock, "b")
        assert FIRST == see(cache, clock, "a")

    def test_a_repeat_refreshes_recency(self, clock: FakeClock) -> None:
        """A key repeated after a newer key was written outlives that newer key."""
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=2, clock=clock)
        see(cache, clock, "a")
        see(cache, clock, "b")
        assert REPEAT == see(cache, clock, "a")
        assert FIRST == see(cache, clock, "c")  # evicts "b", observed before a's repeat
        assert REPEAT == see(cache, clock, "a")
        assert FIRST == see(cache, clock, "b")

    def test_recency_decides_among_pending_keys(self, clock: FakeClock) -> None:
        """With every key pending, the one observed longest ago goes, its count flushed."""
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=2, clock=clock)
        for key in ("a", "b", "a", "b", "a"):
            see(cache, clock, key)
        see(cache, clock, "c")
        assert [("b", 1)] == [(flush.key, flush.count_delta) for flush in cache.due_flushes()]
        assert REPEAT == see(cache, clock, "a")

    def test_a_repeat_does_not_postpone_expiry(self, clock: FakeClock) -> None:
        """Recency is for room only: a repeated key is still flushed a window after its write,
        and then forgotten a window after that flush if nothing more came."""
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=10, clock=clock)
        see(cache, clock, "a")
        clock.advance(WINDOW - 1)
        see(cache, clock, "a")
        clock.advance(LATEST_DUE - (WINDOW - 1))
        assert [1] == [flush.count_delta for flush in cache.due_flushes()]
        clock.advance(LATEST_DUE)
        assert [] == cache.due_flushes()
        assert FIRST == see(cache, clock, "a")

    def test_a_key_evicted_and_written_again_keeps_its_new_write_time(
        self, clock: FakeClock
    ) -> None:
        """The slot an evicted key leaves behind does not expire or flush its next life early."""
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=1, clock=clock)
        see(cache, clock, "a")  # written at 0
        clock.advance(2)
        see(cache, clock, "b")  # evicts "a"
        clock.advance(2)
        see(cache, clock, "a")  # written again at 4, evicts "b"
        clock.advance(LATEST_DUE - 4 + 1)  # the first life of "a" would be due by now
        assert REPEAT == see(cache, clock, "a")
        assert [] == cache.due_flushes()
        clock.advance(4)  # a window after the second write
        assert [1] == [flush.count_delta for flush in cache.due_flushes()]

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

    def test_memory_stays_bounded_when_keys_churn_within_a_window(self, clock: FakeClock) -> None:
        """100,000 one-offs in one window through 1,000 keys: what evictions leave behind is
        cleared, so the cache stays near its size (leftovers alone would take about 15 MB)."""
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=1000, clock=clock)
        see(cache, clock, "hot")  # stays cached and written, so evictions happen around it
        gc.collect()
        tracemalloc.start()
        try:
            for index in range(100_000):
                see(cache, clock, f"falco-{index:016x}")
                if index % 500 == 0:
                    see(cache, clock, "hot")
            used = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert used < 1000 * 400
        assert REPEAT == see(cache, clock, "hot")


class TestFlood:
    """A full cache of one-off findings and one that repeats every second, on the fake clock."""

    SIZE = 1000
    ONE_OFFS_PER_SECOND = 500  # the cache turns over every 2 s, longer than the hot key's period
    SECONDS = 100  # ten windows

    def test_a_repeating_finding_costs_about_one_write_per_window(self, clock: FakeClock) -> None:
        cache = dedup.DedupCache(window_seconds=WINDOW, max_size=self.SIZE, clock=clock)
        fresh = (f"falco-{index:016x}" for index in itertools.count())
        for _ in range(self.SIZE):
            see(cache, clock, next(fresh))
        writes: list[tuple[float, int]] = []  # (seconds since start, occurrences written)
        one_offs = 0
        step = 1 / self.ONE_OFFS_PER_SECOND
        for tick in range(self.SECONDS * self.ONE_OFFS_PER_SECOND):
            assert FIRST == see(cache, clock, next(fresh))
            one_offs += 1
            if tick % self.ONE_OFFS_PER_SECOND == 0 and see(cache, clock, "hot") == FIRST:
                writes.append((clock.now, 1))
            writes.extend(
                (clock.now, flush.count_delta)
                for flush in cache.due_flushes()
                if flush.key == "hot"
            )
            clock.advance(step)
        drained = sum(flush.count_delta for flush in cache.drain() if flush.key == "hot")
        gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(writes)]

        assert self.SIZE == len(cache)
        assert one_offs > 20 * self.SIZE  # the one-offs turned the cache over many times
        assert len(writes) <= self.SECONDS / WINDOW + 1
        assert all(gap >= WINDOW for gap in gaps)
        assert self.SECONDS == sum(count for _, count in writes) + drained


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


class TestBookkeeping:
    """Seeded random observations, clock steps and flushes, with the clearing of what evictions
    leave behind made frequent and slow (small constants), so that it overlaps expiry."""

    @staticmethod
    def entries(cache: dedup.DedupCache) -> dict[dedup.Key, int]:
        """How many entries each key has in the write-time slices (a clearing pass's moved-out
        region excluded)."""
        counts: dict[dedup.Key, int] = {}
        for piece in cache._slices:
            keys = piece.keys
            if cache._to_clear and cache._to_clear[0] is piece:
                keys = keys[: cache._write] + keys[cache._read :]
            for key in keys:
                counts[key] = counts.get(key, 0) + 1
        return counts

    @pytest.mark.parametrize("seed", range(40))
    def test_counts_and_slices_stay_consistent(self, seed: int) -> None:
        """Every step: at most max_size keys, every observation counted once (written, flushed
        or pending), and each key's entries in the slices are its leftovers plus its own."""
        rng = random.Random(seed)
        steps = [(rng.randint(0, 40), rng.choice([0, 0, 0, 0.1, 0.7, 3.0])) for _ in range(600)]
        flush_every = rng.randint(1, 7)
        clock = FakeClock()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(dedup, "_CLEAR_SLACK", 0)
            patch.setattr(dedup, "_CLEAR_PER_EVICTION", 1)
            cache = dedup.DedupCache(window_seconds=WINDOW, max_size=12, clock=clock)
            firsts = flushed = 0
            for index, (key, seconds) in enumerate(steps):
                clock.advance(seconds)
                if see(cache, clock, f"k{key}") == FIRST:
                    firsts += 1
                if index % flush_every == 0:
                    flushed += sum(flush.count_delta for flush in cache.due_flushes())
                assert len(cache) <= 12
                assert index + 1 == firsts + flushed + cache.pending_repeats
                left = {
                    key: cache._evicted.get(key, 0) + cache._clearing.get(key, 0)
                    for key in {*cache._evicted, *cache._clearing}
                }
                expected = {key: left.get(key, 0) + 1 for key in cache._values} | {
                    key: count for key, count in left.items() if key not in cache._values
                }
                assert expected == self.entries(cache)
                assert sum(left.values()) == cache._leftovers
            drained = sum(flush.count_delta for flush in cache.drain())
            assert len(steps) == firsts + flushed + drained


class TestRepeatWithoutPayload:
    def test_an_uncached_key_is_left_for_observe(
        self, cache: dedup.DedupCache, clock: FakeClock
    ) -> None:
        assert not cache.repeat(("falco", ("a",)), now_wall=clock.wall)
        assert 0 == len(cache)
        assert FIRST == see(cache, clock, ("falco", ("a",)), payload="finding")

    def test_a_cached_key_counts_as_observe_would(
        self, cache: dedup.DedupCache, clock: FakeClock
    ) -> None:
        key = ("falco", ("a",))
        see(cache, clock, key, payload="finding")
        assert cache.repeat(key, now_wall=clock.wall)
        assert REPEAT == see(cache, clock, key)
        assert 2 == cache.pending_repeats
        clock.advance(LATEST_DUE)
        [flush] = cache.due_flushes()
        assert (key, 2, "finding") == (flush.key, flush.count_delta, flush.payload)

    def test_an_expired_key_is_not_a_repeat(
        self, cache: dedup.DedupCache, clock: FakeClock
    ) -> None:
        see(cache, clock, "falco-1")
        clock.advance(LATEST_DUE)
        assert not cache.repeat("falco-1", now_wall=clock.wall)
