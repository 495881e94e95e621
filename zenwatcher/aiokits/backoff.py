"""Exponential backoff with jitter, the shape client-go's wait.Backoff uses.

Delays grow `base * factor^n` up to `cap`, each stretched by a random 0-`jitter` fraction so
that many clients failing together do not retry in step. A server's Retry-After wins when longer.
"""

from __future__ import annotations

import random
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
