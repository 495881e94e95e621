"""GC's sweep period: jittered so that shards do not sweep in step."""

from __future__ import annotations

import random

from zenwatcher.leader import gc


class TestJittered:
    def test_within_ten_percent(self) -> None:
        """Every jittered interval is within ±10 % of the interval."""
        rng = random.Random(7)
        values = [gc.jittered(3600.0, rng=rng) for _ in range(1000)]
        assert all(3240.0 <= value <= 3960.0 for value in values)

    def test_spreads(self) -> None:
        """Jitter actually varies the interval, so shards drift apart."""
        rng = random.Random(7)
        assert 1 < len({gc.jittered(3600.0, rng=rng) for _ in range(10)})

    def test_zero_stays_zero(self) -> None:
        """An initial delay of 0 (tests) is not jittered into a wait."""
        assert 0.0 == gc.jittered(0.0, rng=random.Random(7))
