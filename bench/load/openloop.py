"""Open-loop senders that run in the benchmark's own process: unique Falco alerts over persistent
HTTP/1.1 connections, each request due at its scheduled time whatever happened to earlier ones,
on an event loop in a thread pinned to the load CPU. Shared by the latency and soak points.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
import uvloop

from bench.load.common import LOAD_CPU
from bench.load.loadgen import read_response

T = TypeVar("T")

CONNECTIONS = 16  # a few idle ones are cheap; too few would queue requests in the sender
FALCO_PATH = "/falco/webhook"

# (index, when it went out, when it was answered, HTTP status or 0 for a transport error)
OnAnswer = Callable[[int, float, float, int], None]


def on_load_cpu(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on its own event loop in a thread pinned to LOAD_CPU.

    Affinity is per thread on Linux, so the caller (bench.run, which starts daemons and kubectl
    afterwards) keeps its own; threads the loop starts inherit the pin.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        with contextlib.suppress(OSError, ValueError):
            if int(LOAD_CPU) in os.sched_getaffinity(0):
                os.sched_setaffinity(0, {int(LOAD_CPU)})
        try:
            outcome.append(uvloop.run(factory()))
        except BaseException as error:  # handed to the caller's thread below
            failure.append(error)

    thread = threading.Thread(target=target, name="bench-load")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def falco_body(namespace: str, pod: str) -> bytes:
    """One Falco alert whose finding is told apart by `pod` (shaped as bench.load.loadgen's)."""
    return orjson.dumps(
        {
            "rule": "Terminal shell in container",
            "priority": "Warning",
            "output": f"shell in {pod}",
            "time": "2026-01-01T00:00:00.000000000Z",
            "output_fields": {
                "k8s.ns.name": namespace,
                "k8s.pod.name": pod,
                "container.id": "c1",
                "proc.name": "bash",
            },
        }
    )


async def _connection(
    port: int, queue: asyncio.Queue[tuple[int, float, bytes] | None], on_answer: OnAnswer
) -> None:
    """One persistent HTTP/1.1 connection taking requests in order (as bench.load.loadgen does)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (item := await queue.get()) is not None:
            index, _scheduled, request = item
            sent = time.perf_counter()
            try:
                writer.write(request)
                status = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = 0
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            on_answer(index, sent, time.perf_counter(), status)
    finally:
        writer.close()


async def send_open_loop(
    *,
    port: int,
    rate: float,
    duration: float,
    request: Callable[[int], bytes],
    on_answer: OnAnswer,
    connections: int = CONNECTIONS,
    started: float | None = None,
) -> float:
    """Request `index` is due at started + index / rate whatever happened to earlier ones;
    returns the seconds from start until the last answer."""
    queue: asyncio.Queue[tuple[int, float, bytes] | None] = asyncio.Queue()
    workers = [asyncio.create_task(_connection(port, queue, on_answer)) for _ in range(connections)]
    begin = time.perf_counter() if started is None else started
    for index in range(int(rate * duration)):
        scheduled = begin + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((index, scheduled, request(index)))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return time.perf_counter() - begin
