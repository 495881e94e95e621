"""Named, guarded tasks and an orderly stop (kopf's aiotasks habit).

A task meant to live forever that returns or raises is logged, so a dead writer or elector is
never silent; `stop_tasks` cancels, waits, and logs any task that will not stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import structlog

logger = structlog.get_logger()


def create_guarded_task(coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
    """A named task whose unexpected end (return or exception) is logged."""
    return asyncio.create_task(_guard(coro, name=name), name=name)


async def _guard(coro: Coroutine[Any, Any, None], *, name: str) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("task_failed", task=name)
        raise
    logger.error("task_ended_unexpectedly", task=name)


async def stop_tasks(tasks: list[asyncio.Task[None]], *, timeout: float = 5.0) -> None:
    """Cancel the tasks and wait for them; name the ones still stuck after `timeout`."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        logger.error("task_stuck_on_cancel", task=task.get_name())
    for task in done:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()
