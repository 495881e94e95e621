"""loop_lag.sample_loop_lag: a callback that holds the loop shows as lag, an idle loop does not."""

from __future__ import annotations

import asyncio
import time

from zenwatcher import loop_lag

INTERVAL = 0.02
STALL = 0.3


async def samples_around(stall: float | None, *, count: int = 12) -> list[float]:
    """`count` samples; with `stall`, the loop is held that long after the third."""
    samples: list[float] = []
    enough = asyncio.Event()

    def observe(lag: float) -> None:
        samples.append(lag)
        if len(samples) == 3 and stall is not None:
            # Due on the loop's next turn: the sampler's timer falls due during it.
            asyncio.get_running_loop().call_soon(time.sleep, stall)
        if len(samples) == count:
            enough.set()

    sampler = asyncio.create_task(loop_lag.sample_loop_lag(observe, interval=INTERVAL))
    try:
        await asyncio.wait_for(enough.wait(), timeout=10)
    finally:
        sampler.cancel()
    return samples


async def test_a_held_loop_shows_as_one_late_wake_up() -> None:
    samples = await samples_around(STALL)
    late = [lag for lag in samples if lag > STALL / 2]
    # The stall began less than one interval before the timer was due.
    assert len(late) == 1
    assert STALL - INTERVAL - 0.005 <= late[0] <= STALL + 1.0
    assert min(samples) >= 0.0


async def test_an_idle_loop_shows_no_stall() -> None:
    samples = await samples_around(None)
    assert max(samples) < STALL / 2
    assert min(samples) >= 0.0
