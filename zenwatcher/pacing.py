"""How fast and how often to call the API server: a token bucket (client-go's QPS and Burst) and
exponential backoff with jitter (the shape of client-go's wait.Backoff).

Backoff delays grow `base * factor^n` up to `cap`, each stretched by a random 0-`jitter` fraction
so that many clients failing together do not retry in step. A server's Retry-After wins when
longer.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_SHARED_RANDOM = random.Random()  # noqa: S311 - jitter, not secrets


@dataclass(slots=True)
class Backoff:
    """One retry sequence; `reset()` after a success."""

    base: float = 0.8
    cap: float = 30.0
    factor: float = 2.0
    jitter: float = 1.0
    attempts: int = 0
    # One generator for all: seeding a new one per write (from os.urandom) showed in profiles.
    _random: random.Random = field(default=_SHARED_RANDOM)

    def next_delay(self, *, hint: float | None = None) -> float:
        """Seconds to wait before the next attempt."""
        raw = min(self.cap, self.base * self.factor**self.attempts)
        self.attempts += 1
        delay = min(self.cap, raw * (1.0 + self._random.random() * self.jitter))
        return max(delay, hint) if hint is not None else delay

    def reset(self) -> None:
        self.attempts = 0


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
