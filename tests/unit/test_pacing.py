"""How fast and how often we call the API server: the token bucket and the backoff.

The bucket runs on a fake monotonic clock (its waits are computed, not slept through where
the rate allows).
"""

from __future__ import annotations

import random

from zenwatcher.pacing import Backoff, TokenBucket


class TestTokenBucket:
    async def test_burst_is_free_then_each_token_waits_one_interval(self) -> None:
        """`burst` calls go at once; the next one owes 1/rate seconds."""
        now = [0.0]
        bucket = TokenBucket(rate=10.0, burst=3, clock=lambda: now[0])
        waits = [bucket._take() for _ in range(4)]
        assert [0.0, 0.0, 0.0] == waits[:3]
        assert abs(waits[3] - 0.1) < 1e-9

    async def test_tokens_refill_with_time_up_to_burst(self) -> None:
        """After a pause the bucket holds at most `burst` tokens again."""
        now = [0.0]
        bucket = TokenBucket(rate=10.0, burst=2, clock=lambda: now[0])
        for _ in range(2):
            bucket._take()
        now[0] = 100.0  # long enough for far more than `burst` tokens
        assert [0.0, 0.0] == [bucket._take(), bucket._take()]
        assert bucket._take() > 0.0

    async def test_rate_zero_is_unlimited(self) -> None:
        """API_QPS=0 means no client-side limit: acquire never waits."""
        bucket = TokenBucket(rate=0, burst=1, clock=lambda: 0.0)
        for _ in range(1000):
            await bucket.acquire()


class TestBackoff:
    def test_grows_to_the_cap(self) -> None:
        """Delays grow by `factor` from `base` and stop at `cap` (no jitter here)."""
        backoff = Backoff(base=1.0, cap=8.0, factor=2.0, jitter=0.0)
        assert [1.0, 2.0, 4.0, 8.0, 8.0] == [backoff.next_delay() for _ in range(5)]

    def test_jitter_stretches_within_its_fraction(self) -> None:
        """Each delay is stretched by at most `jitter` of itself, and never past the cap."""
        backoff = Backoff(base=1.0, cap=100.0, factor=1.0, jitter=0.5, _random=random.Random(3))
        delays = [backoff.next_delay() for _ in range(200)]
        assert all(1.0 <= delay <= 1.5 for delay in delays)
        assert 1 < len(set(delays))

    def test_retry_after_wins_when_longer(self) -> None:
        """A server's Retry-After longer than the backoff is what we wait."""
        backoff = Backoff(base=0.2, cap=10.0, jitter=0.0)
        assert 7.0 == backoff.next_delay(hint=7.0)
        assert 0.4 == backoff.next_delay(hint=0.1)

    def test_reset_starts_again_from_base(self) -> None:
        backoff = Backoff(base=1.0, cap=8.0, jitter=0.0)
        for _ in range(3):
            backoff.next_delay()
        backoff.reset()
        assert 1.0 == backoff.next_delay()
