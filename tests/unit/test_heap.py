"""heap.settle_after_start: start-up's objects frozen, young passes per request, not per 700."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from zenwatcher import heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """The test process's collector as it was: the settings are process-wide."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_young_passes_are_rarer() -> None:
    kept = [[index] for index in range(100)]  # alive through start-up, like the daemon's app
    older = gc.get_threshold()[1:]
    heap.settle_after_start()
    assert gc.get_freeze_count() >= len(kept)
    # Frozen objects are in no generation: no pass walks them.
    walked = {id(item) for item in gc.get_objects()}
    assert not any(id(item) in walked for item in kept)
    assert (heap.GEN0_THRESHOLD, *older) == gc.get_threshold()
    # Objects made afterwards are collected as usual.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
