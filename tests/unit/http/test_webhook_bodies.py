"""How the webhook handler reads bodies: compressed, chunked, slow, too many events.

A real aiohttp server on a loopback socket, spoken to over raw TCP where a client library would
refuse to send what is under test (a broken chunked body, a stalled one).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from tests.harness.controlplane.controlplane import free_port
from zenwatcher.filters.state import FilterState
from zenwatcher.http import webhooks
from zenwatcher.http.guard import guarded_dispatch
from zenwatcher.http.serving import Server
from zenwatcher.http.trust import PeerPolicy
from zenwatcher.mapping import falco
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.dedup import DedupCache
from zenwatcher.pipeline.intake import EventIntake
from zenwatcher.pipeline.jobs import WriteJob

ALERT = {"rule": "Terminal shell", "priority": "Warning", "output_fields": {"k8s.pod.name": "p"}}


@pytest.fixture(name="port")
async def _port() -> AsyncIterator[int]:
    async with serving(max_body_bytes=2 * 1024 * 1024) as port:
        yield port


@contextlib.asynccontextmanager
async def serving(*, max_body_bytes: int) -> AsyncIterator[int]:
    """The Falco handler behind its guard on a loopback port, the write queue holding 3."""
    metrics = Metrics(CollectorRegistry())
    queued: list[WriteJob] = []
    intake = EventIntake(
        source="falco",
        map_event=falco.map_falco_alert,
        filters=FilterState(),
        dedup=DedupCache(window_seconds=60, max_size=100),
        accounting=Accounting(metrics),
        enqueue=queued.append,
        default_namespace="zen-system",
    )
    admission = webhooks.Admission(free_slots=lambda: 3 - len(queued), capacity=3)
    handler = webhooks.make_handler(
        intake=intake, split=falco.split_falco_body, admission=admission
    )
    policy = PeerPolicy(allowed=(), trusted_proxies=())
    dispatch = guarded_dispatch([("/hook", handler)], metrics=metrics, policy=policy, token="")
    server = Server(dispatch, port=free_port(), host="127.0.0.1", max_body_bytes=max_body_bytes)
    await server.start()
    try:
        yield server.port
    finally:
        await server.stop()


async def exchange(port: int, head: str, *body_parts: bytes, pause: float = 0.0) -> tuple[int, Any]:
    """Send a request's head and body parts (waiting `pause` between parts); status and JSON.

    The answer is read by its Content-Length, not to the end of the connection: after an early
    answer aiohttp lingers up to 10 s to read the rest of a body that never comes.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + b"\r\n")
        for part in body_parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(pause)
        answer_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        lines = answer_head.decode().split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        body = await asyncio.wait_for(reader.readexactly(length), timeout=10)
    finally:
        writer.close()
    return int(lines[0].split()[1]), orjson.loads(body)


def head(*headers: str) -> str:
    return "\r\n".join(["POST /hook HTTP/1.1", "Host: x", "Connection: close", *headers, ""])


async def test_compressed_body_is_415(port: int) -> None:
    status, answer = await exchange(
        port, head("Content-Encoding: gzip", "Content-Length: 3"), b"abc"
    )
    assert 415 == status
    assert "gzip" in answer["error"]


async def test_chunked_body_is_read(port: int) -> None:
    body = orjson.dumps(ALERT)
    chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    status, answer = await exchange(port, head("Transfer-Encoding: chunked"), chunk)
    assert (200, 1) == (status, answer["accepted"])


async def test_small_body_still_arriving_is_read_whole(port: int) -> None:
    """A small body is taken as it lies when aiohttp has all of it; one still arriving when the
    handler starts is awaited to its end, not answered from its first part."""
    body = orjson.dumps([ALERT, {**ALERT, "rule": "Another rule"}])
    status, answer = await exchange(
        port, head(f"Content-Length: {len(body)}"), body[:20], body[20:], pause=0.2
    )
    assert (200, 2) == (status, answer["accepted"])


async def test_small_body_over_the_size_limit_is_413() -> None:
    """The body size limit holds for a body read whole at once, as for one read in parts."""
    body = orjson.dumps({**ALERT, "output": "x" * 200})
    async with serving(max_body_bytes=100) as port:
        status, answer = await exchange(port, head(f"Content-Length: {len(body)}"), body)
        assert 413 == status
        assert answer["error"]


async def test_slow_large_body_is_408(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "BODY_READ_SECONDS", 0.3)
    status, answer = await exchange(
        port, head("Content-Length: 1500000"), b"[", b" " * 10, pause=1.0
    )
    assert 408 == status
    assert "not received" in answer["error"]


async def test_more_events_than_the_queue_holds_is_413(port: int) -> None:
    body = orjson.dumps([ALERT] * 4)
    status, answer = await exchange(port, head(f"Content-Length: {len(body)}"), body)
    assert 413 == status
    assert "the write queue holds 3" in answer["error"]


async def test_expect_100_continue_is_answered_before_the_body(port: int) -> None:
    """libcurl (Falco's http_output) sends `Expect: 100-continue` and waits for the interim
    answer before a larger body; without it the client stalls for a second per request."""
    body = orjson.dumps(ALERT)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request_head = head("Expect: 100-continue", f"Content-Length: {len(body)}")
        writer.write(request_head.encode() + b"\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        assert final.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


async def test_unknown_expectation_is_417(port: int) -> None:
    status, answer = await exchange(
        port, head("Expect: something-else", "Content-Length: 2"), b"{}"
    )
    assert 417 == status
    assert "something-else" in answer["error"]
