"""A token bucket for client-side API write rate limits (client-go's QPS and Burst)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; rate 0 means unlimited."""

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(max(1, burst))
        self._tokens = self._burst
        self._clock = clock
        self._updated = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a token is free, then take it."""
        if self._rate <= 0:
            return
        async with self._lock:
            wait = self._take()
            if wait > 0:
                await asyncio.sleep(wait)

    def _take(self) -> float:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        self._tokens -= 1.0
        # A negative balance is the debt the caller sleeps off before its call.
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate
