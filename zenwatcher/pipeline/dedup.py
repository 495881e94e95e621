"""The TTL-LRU cache that absorbs repeats of event findings (Falco, audit) between API writes.

`observe` answers FIRST (write it now) or REPEAT (counted here). Absorbed counts come back from
`due_flushes` once a window has passed since the key's last write, so a finding costs about one
write per window and no count is lost (docs/design.md §3). When full, the least
recently observed key goes, so findings that keep repeating stay through a flood of one-offs.
O(1) amortised per call, at most `max_size` keys, clock injected; not thread-safe, one event
loop owns it.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime

# Keys are grouped by when they were last written, in slices of window/16: a slice is due when
# its end is a window old, so writes are never closer than a window and at most 1/16 later.
# One shared timestamp per slice instead of one per key keeps a key small.
SLICES_PER_WINDOW = 16

# Evicted keys leave their entry in a slice (found and dropped when the slice is due). Past this
# many such entries beyond half the live keys, a pass clears the slices of them, a few entries per
# eviction (no pause): that keeps the slices within about 1.6 times the live keys, at an amortised
# constant cost per eviction.
_CLEAR_SLACK = 64
_CLEAR_PER_EVICTION = 32

_ABSENT = object()

# What a finding is known by here: the intake uses (source, identity), which names exactly one
# Observation (its name is a hash of the same), without hashing it for every repeat.
Key = Hashable


class Decision(enum.Enum):
    """What the caller must do with an observed finding."""

    FIRST = "first"  # not cached: write it (create the Observation with count 1)
    REPEAT = "repeat"  # absorbed: counted as deduplicated, written later by a Flush


@dataclass(frozen=True, slots=True)
class Flush:
    """Repeats absorbed for one key since its last write: add `count_delta` to its count."""

    key: Key
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

    __slots__ = ("keys", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.keys: list[Key] = []


class DedupCache:
    """Remembers which findings were written in the last window, and counts their repeats.

    Two orders: by last write, for time (a key expires a window after its last write — its
    FIRST or its last flush — if nothing was absorbed since; with repeats pending it is
    flushed instead and stays, so a finding that keeps firing costs one write per window, not
    two: a flush, then a create answered by a 409); and by last observation, for room (when
    full, the least recently observed key goes, its pending count to the next
    `due_flushes()`). A repeat refreshes a key's recency, not its write time.
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
        self._slice_seconds = window_seconds / SLICES_PER_WINDOW
        # A slice is due once its start is this long ago (a window after its end).
        self._due_after = window_seconds + self._slice_seconds
        self._max_size = max_size
        self._clock = clock
        # key -> payload, or _Repeats while some are pending; least recently observed first
        self._values: OrderedDict[Key, object] = OrderedDict()
        # by last write; a cached key's newest entry is its own, older ones are evicted leftovers
        self._slices: deque[_Slice] = deque()
        # key -> how many of its oldest entries in the slices evictions left behind; `_clearing`
        # holds those a pass is clearing from the slices in `_to_clear`, all older than
        # `_evicted`'s. In `_to_clear[0]`, entries before `_read` are done: the kept ones were
        # moved down to before `_write`.
        self._evicted: dict[Key, int] = {}
        self._clearing: dict[Key, int] = {}
        self._to_clear: deque[_Slice] = deque()
        self._read = self._write = 0
        self._leftovers = 0  # entries counted in _evicted and _clearing
        self._ready: list[Flush] = []  # flushes found while observing, handed out by due_flushes
        self._pending = 0  # repeats absorbed and not yet handed out in a Flush

    def __len__(self) -> int:
        return len(self._values)

    @property
    def pending_repeats(self) -> int:
        """Repeats absorbed whose count has not been handed out in a Flush yet."""
        return self._pending

    def observe(self, key: Key, *, now_wall: datetime, payload: object = None) -> Decision:
        """FIRST when `key` is not cached (then `payload` is kept for its flushes), else REPEAT."""
        now = self._clock()
        self._settle_due(now)
        if self._count_repeat(key, now_wall):
            return Decision.REPEAT
        if len(self._values) >= self._max_size:
            self._evict_least_recent()
        self._values[key] = payload
        self._place(key, now)
        return Decision.FIRST

    def repeat(self, key: Key, *, now_wall: datetime) -> bool:
        """`observe` for a caller that has not built the payload: a cached key is counted as a
        REPEAT (True); an uncached one is left alone (False), to be observed with its payload."""
        now = self._clock()
        slices = self._slices
        # `_settle_due`'s own test, here first: a repeat rarely finds a slice due.
        if slices and slices[0].start <= now - self._due_after:
            self._settle_due(now)
        return self._count_repeat(key, now_wall)

    def _count_repeat(self, key: Key, now_wall: datetime) -> bool:
        values = self._values
        value = values.get(key, _ABSENT)
        if value is _ABSENT:
            return False
        values.move_to_end(key)
        if isinstance(value, _Repeats):
            value.count += 1
            value.last_seen = now_wall
        else:
            values[key] = _Repeats(payload=value, last_seen=now_wall)
        self._pending += 1
        return True

    def due_flushes(self) -> list[Flush]:
        """Pending counts whose key was last written at least a window ago, plus evicted ones.

        Each returned key that is still cached counts as written now: its next flush is a
        window away.
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
        due_start = now - self._due_after
        slices = self._slices
        while slices and slices[0].start <= due_start:
            oldest = slices.popleft()
            keys = oldest.keys
            if self._to_clear and self._to_clear[0] is oldest:  # half cleared: take what is valid
                keys = keys[: self._write] + keys[self._read :]
                self._to_clear.popleft()
                self._read = self._write = 0
            oldest.keys = []  # a clearing pass has nothing left to do here
            for key in keys:
                if self._leftovers and self._is_leftover(key):
                    continue
                value = self._values[key]
                if isinstance(value, _Repeats):
                    self._ready.append(self._flush(key, value))
                    self._place(key, now)
                else:
                    del self._values[key]

    def _is_leftover(self, key: Key) -> bool:
        """Whether this entry of `key` was left by an eviction (then it is dropped, here).

        Entries are met oldest first and a cached key's own entry is its newest, so while
        `key` has leftovers, the entry met is one.
        """
        return self._take(self._clearing, key) or self._take(self._evicted, key)

    def _take(self, counts: dict[Key, int], key: Key) -> bool:
        left = counts.get(key, 0)
        if not left:
            return False
        if left == 1:
            del counts[key]
        else:
            counts[key] = left - 1
        self._leftovers -= 1
        return True

    def _evict_least_recent(self) -> None:
        key, value = self._values.popitem(last=False)
        if isinstance(value, _Repeats):
            self._ready.append(Flush(key, value.count, value.last_seen, value.payload))
        self._evicted[key] = self._evicted.get(key, 0) + 1
        self._leftovers += 1
        if not self._to_clear and self._leftovers > len(self._values) // 2 + _CLEAR_SLACK:
            # A pass clears what was evicted so far, oldest entry first; later evictions count
            # apart, their entries being newer than any of these.
            self._clearing, self._evicted = self._evicted, {}
            self._to_clear = deque(self._slices)
            self._read = self._write = 0
        if self._to_clear:
            self._clear_some()

    def _clear_some(self) -> None:
        """Move the clearing pass on by up to _CLEAR_PER_EVICTION entries."""
        budget = _CLEAR_PER_EVICTION
        clearing = self._clearing
        while budget and self._to_clear:
            keys = self._to_clear[0].keys
            read, write = self._read, self._write
            end = min(len(keys), read + budget)
            budget -= end - read
            for key in keys[read:end]:
                if key not in clearing or not self._take(clearing, key):
                    keys[write] = key
                    write += 1
            if end < len(keys):
                self._read, self._write = end, write
                return
            del keys[write:]
            self._to_clear.popleft()
            self._read = self._write = 0

    def _flush(self, key: Key, repeats: _Repeats) -> Flush:
        """The flush for a key's pending count; the key goes back to holding just its payload."""
        self._values[key] = repeats.payload
        return Flush(key, repeats.count, repeats.last_seen, repeats.payload)

    def _place(self, key: Key, now: float) -> None:
        """Record `key` as written at `now`, in the newest slice or a new one."""
        if not self._slices or now >= self._slices[-1].start + self._slice_seconds:
            self._slices.append(_Slice(now))
        self._slices[-1].keys.append(key)
