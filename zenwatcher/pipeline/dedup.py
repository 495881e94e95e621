"""The TTL cache that absorbs repeats of event findings (Falco, audit) between API writes.

`observe` answers FIRST (write it now) or REPEAT (counted here). Absorbed counts come back from
`due_flushes` once a window has passed since the key's last write, so a finding costs about one
write per window and no count is lost (docs/design.md §3). O(1) amortised per call, at most
`max_size` keys, clock injected; not thread-safe, one event loop owns it.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

# Keys are grouped by when they were last written, in slices of window/16: a slice is due when
# its end is a window old, so writes are never closer than a window and at most 1/16 later.
# One shared timestamp per slice instead of one per key keeps a key near 100 bytes.
SLICES_PER_WINDOW = 16

_ABSENT = object()


class Decision(enum.Enum):
    """What the caller must do with an observed finding."""

    FIRST = "first"  # not cached: write it (create the Observation with count 1)
    REPEAT = "repeat"  # absorbed: counted as deduplicated, written later by a Flush


@dataclass(frozen=True, slots=True)
class Flush:
    """Repeats absorbed for one key since its last write: add `count_delta` to its count."""

    key: str
    count_delta: int
    last_seen: datetime
    payload: object


class _Repeats:
    """A key with repeats pending; a key without any maps straight to its payload (less memory)."""

    __slots__ = ("count", "last_seen", "payload")

    def __init__(self, *, payload: object, last_seen: datetime) -> None:
        self.payload = payload
        self.count = 1
        self.last_seen = last_seen


class _Slice:
    """Keys last written at or after `start` and before the next slice, oldest first."""

    __slots__ = ("head", "keys", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.keys: list[str] = []
        self.head = 0  # keys before it were evicted


class DedupCache:
    """Remembers which findings were written in the last window, and counts their repeats.

    A key expires a window after its last write (its FIRST or its last flush) if nothing was
    absorbed since; with repeats pending it is flushed instead and stays, so a finding that keeps
    firing costs one write per window, not two (a flush, then a create answered by a 409).
    When full, the key written longest ago goes first, its pending count to the next
    `due_flushes()`: it is the one closest to its flush or expiry anyway, and this order needs
    no per-key timestamp (an LRU would keep hot keys through a flood, at about twice the memory).
    """

    def __init__(
        self,
        *,
        window_seconds: float,
        max_size: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not window_seconds > 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds!r}")
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size!r}")
        self._window = window_seconds
        self._slice_seconds = window_seconds / SLICES_PER_WINDOW
        self._max_size = max_size
        self._clock = clock
        self._values: dict[str, object] = {}  # key -> payload, or _Repeats while some are pending
        self._slices: deque[_Slice] = deque()  # every key sits in exactly one slice
        self._ready: list[Flush] = []  # flushes found while observing, handed out by due_flushes
        self._pending = 0  # repeats absorbed and not yet handed out in a Flush

    def __len__(self) -> int:
        return len(self._values)

    @property
    def pending_repeats(self) -> int:
        """Repeats absorbed whose count has not been handed out in a Flush yet."""
        return self._pending

    def observe(self, key: str, *, now_wall: datetime, payload: object = None) -> Decision:
        """FIRST when `key` is not cached (then `payload` is kept for its flushes), else REPEAT."""
        now = self._clock()
        self._settle_due(now)
        value = self._values.get(key, _ABSENT)
        if value is _ABSENT:
            if len(self._values) >= self._max_size:
                self._evict_oldest()
            self._values[key] = payload
            self._place(key, now)
            return Decision.FIRST
        if isinstance(value, _Repeats):
            value.count += 1
            value.last_seen = now_wall
        else:
            self._values[key] = _Repeats(payload=value, last_seen=now_wall)
        self._pending += 1
        return Decision.REPEAT

    def due_flushes(self) -> list[Flush]:
        """Pending counts whose key was last written at least a window ago, plus evicted ones.

        Each returned key counts as written now: its next flush is a window away.
        """
        self._settle_due(self._clock())
        ready, self._ready = self._ready, []
        self._pending -= sum(flush.count_delta for flush in ready)
        return ready

    def drain(self) -> list[Flush]:
        """Every pending count, due or not (for shutdown); the keys stay cached."""
        flushes = self.due_flushes()
        pending = [
            (key, value) for key, value in self._values.items() if isinstance(value, _Repeats)
        ]
        for key, repeats in pending:
            flushes.append(self._flush(key, repeats))
            self._pending -= repeats.count
        return flushes

    def _settle_due(self, now: float) -> None:
        """Flush (and keep) or expire every key whose slice is a window old."""
        due_start = now - self._window - self._slice_seconds
        slices = self._slices
        while slices and slices[0].start <= due_start:
            oldest = slices.popleft()
            for key in oldest.keys[oldest.head :]:
                value = self._values[key]
                if isinstance(value, _Repeats):
                    self._ready.append(self._flush(key, value))
                    self._place(key, now)
                else:
                    del self._values[key]

    def _evict_oldest(self) -> None:
        oldest = self._slices[0]
        key = oldest.keys[oldest.head]
        oldest.head += 1
        if oldest.head == len(oldest.keys):
            self._slices.popleft()
        value = self._values.pop(key)
        if isinstance(value, _Repeats):
            self._ready.append(Flush(key, value.count, value.last_seen, value.payload))

    def _flush(self, key: str, repeats: _Repeats) -> Flush:
        """The flush for a key's pending count; the key goes back to holding just its payload."""
        self._values[key] = repeats.payload
        return Flush(key, repeats.count, repeats.last_seen, repeats.payload)

    def _place(self, key: str, now: float) -> None:
        """Record `key` as written at `now`, in the newest slice or a new one."""
        if not self._slices or now >= self._slices[-1].start + self._slice_seconds:
            self._slices.append(_Slice(now))
        self._slices[-1].keys.append(key)
