"""How late the event loop runs what is due: the delay a stall adds to everything waiting.

The webhooks, the writers, the elector's renewals and the informers share one event loop, so a
callback that holds it (a large body parsed, a long list decoded, a full collection) delays every
answer and renewal behind it. A timer due every INTERVAL seconds measures that: how long after
its due time it ran. A stall overlapping a due time shows at its remaining length, so over a
scrape interval the histogram gives how often the loop was held, and for how long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

INTERVAL = 0.1  # ten wake-ups a second: nothing next to the webhooks' thousands of requests
# Lag is observed in seconds; these bounds start where uvloop's millisecond timers stop
# being the cause and end where the elector's renew deadline is at stake.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


async def sample_loop_lag(observe: Callable[[float], None], *, interval: float = INTERVAL) -> None:
    """Forever: sleep `interval`, then `observe` how late the wake-up came (seconds, >= 0)."""
    clock = time.monotonic  # not loop.time(): uvloop's is in milliseconds, read once per turn
    while True:
        due = clock() + interval
        await asyncio.sleep(interval)
        observe(max(0.0, clock() - due))
