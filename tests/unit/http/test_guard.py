"""Unit tests for zenwatcher.http.guard: a tiny dispatch per test, served as the daemon serves
its webhooks (zenwatcher.http.serving.Server, aiohttp's low-level server) on a loopback socket.

The daemon's e2e tests post to the real webhooks; these pin the guard's order and answers
(allow-list, token, method, then handler; JSON for every error; each answer counted).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import ClientSession, web
from prometheus_client import CollectorRegistry

from tests.harness.controlplane.controlplane import free_port
from zenwatcher.http.guard import UNMATCHED, guarded_dispatch
from zenwatcher.http.serving import Server
from zenwatcher.http.trust import PeerPolicy
from zenwatcher.metrics import Metrics

TOKEN = "s3cret"
Serve = Callable[..., Awaitable[tuple[ClientSession, Metrics, int]]]


async def echo(request: web.BaseRequest) -> web.StreamResponse:
    """Reads the body (so the size limit applies) and answers its length."""
    return web.json_response({"length": len(await request.read())})


async def broken(request: web.BaseRequest) -> web.StreamResponse:
    raise RuntimeError("a bug")


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[Server] = []
    sessions: list[ClientSession] = []

    async def start(
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]] = echo,
        *,
        token: str = TOKEN,
        allowed: str = "",
        proxies: str = "",
    ) -> tuple[ClientSession, Metrics, int]:
        metrics = Metrics(CollectorRegistry())
        networks = (ipaddress.ip_network(allowed),) if allowed else ()
        trusted = (ipaddress.ip_network(proxies),) if proxies else ()
        policy = PeerPolicy(allowed=networks, trusted_proxies=trusted)
        dispatch = guarded_dispatch(
            [("/hook", handler)], metrics=metrics, policy=policy, token=token
        )
        server = Server(dispatch, port=free_port(), host="127.0.0.1", max_body_bytes=64)
        await server.start()
        servers.append(server)
        session = ClientSession(f"http://127.0.0.1:{server.port}")
        sessions.append(session)
        return session, metrics, server.port

    yield start
    for session in sessions:
        await session.close()
    for server in servers:
        await server.stop()


def counted(metrics: Metrics, endpoint: str, status: int) -> float:
    value = metrics.registry.get_sample_value(
        "zen_watcher_webhook_requests_total", {"endpoint": endpoint, "status": str(status)}
    )
    return value or 0.0


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_post_with_token_reaches_the_handler(serve: Serve) -> None:
    session, metrics, _ = await serve()
    async with session.post("/hook", data=b"abc", headers=AUTH) as response:
        assert (200, {"length": 3}) == (response.status, await response.json())
    assert 1 == counted(metrics, "/hook", 200)


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}"])
async def test_missing_or_wrong_token_is_401(serve: Serve, header: str | None) -> None:
    session, metrics, _ = await serve()
    headers = {"Authorization": header} if header else {}
    async with session.post("/hook", data=b"{}", headers=headers) as response:
        assert 401 == response.status
        assert "Bearer" == response.headers["WWW-Authenticate"]
        assert "bearer token" in (await response.json())["error"]
    assert 1 == counted(metrics, "/hook", 401)


async def test_token_is_checked_before_the_method(serve: Serve) -> None:
    """An unauthenticated caller learns nothing about which methods exist."""
    session, _, _ = await serve()
    async with session.get("/hook") as response:
        assert 401 == response.status


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_other_methods_are_405_json_with_allow(serve: Serve, method: str) -> None:
    session, metrics, _ = await serve()
    async with session.request(method, "/hook", headers=AUTH) as response:
        assert 405 == response.status
        assert "POST" == response.headers["Allow"]
        assert "application/json" == response.content_type
        assert (await response.json())["error"]
    assert 1 == counted(metrics, "/hook", 405)


async def test_unknown_path_is_404_counted_as_unmatched(serve: Serve) -> None:
    session, metrics, _ = await serve()
    for path in ("/nope", "/hook/extra", "/"):
        async with session.post(path, headers=AUTH) as response:
            assert 404 == response.status
            assert (await response.json())["error"]
    assert 3 == counted(metrics, UNMATCHED, 404)


async def test_body_over_the_limit_is_413_json(serve: Serve) -> None:
    session, metrics, _ = await serve()
    async with session.post("/hook", data=b"x" * 65, headers=AUTH) as response:
        assert 413 == response.status
        assert "application/json" == response.content_type
        assert (await response.json())["error"]
    assert 1 == counted(metrics, "/hook", 413)


async def test_a_bug_is_a_json_500_and_the_server_keeps_serving(serve: Serve) -> None:
    session, metrics, _ = await serve(broken)
    for _ in range(2):
        async with session.post("/hook", data=b"{}", headers=AUTH) as response:
            assert 500 == response.status
            assert {"error": "internal error"} == await response.json()
    assert 2 == counted(metrics, "/hook", 500)


async def test_peer_outside_the_allow_list_is_403_before_the_token(serve: Serve) -> None:
    session, metrics, _ = await serve(allowed="10.0.0.0/8")
    async with session.post("/hook", data=b"{}") as response:
        assert 403 == response.status
        assert "127.0.0.1" in (await response.json())["error"]
    assert 1 == counted(metrics, "/hook", 403)


async def test_peer_inside_the_allow_list_passes(serve: Serve) -> None:
    session, _, _ = await serve(allowed="127.0.0.0/8")
    async with session.post("/hook", data=b"ab", headers=AUTH) as response:
        assert 200 == response.status


async def test_no_token_configured_needs_no_header(serve: Serve) -> None:
    session, _, _ = await serve(token="")
    async with session.post("/hook", data=b"ab") as response:
        assert 200 == response.status


async def test_a_path_with_an_encoded_newline_is_guarded_and_counted(serve: Serve) -> None:
    session, metrics, _ = await serve()
    for path in ("/a%0Ab", "/hook%0A"):
        async with session.post(path, headers=AUTH) as response:
            assert 404 == response.status
            assert "application/json" == response.content_type
        async with session.post(path) as response:
            assert 401 == response.status
    assert 2 == counted(metrics, UNMATCHED, 404)
    assert 2 == counted(metrics, UNMATCHED, 401)


async def test_a_token_that_is_not_utf8_is_401_not_500(serve: Serve) -> None:
    """aiohttp decodes such header bytes as surrogates; comparing them must not raise."""
    _, metrics, port = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /hook HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
        )
        status_line = await reader.readline()
    finally:
        writer.close()
    assert b" 401 " in status_line
    assert 1 == counted(metrics, "/hook", 401)


async def test_every_forwarded_for_line_is_read(serve: Serve) -> None:
    """A proxy that adds its own X-Forwarded-For line (HAProxy's option forwardfor) after the
    client's: the client's own line cannot choose the address that is checked."""
    session, _, _ = await serve(allowed="10.0.0.0/8", proxies="127.0.0.0/8")
    forged = [("X-Forwarded-For", "10.1.1.1"), ("X-Forwarded-For", "203.0.113.9")]
    async with session.post("/hook", data=b"x", headers=[*AUTH.items(), *forged]) as response:
        assert 403 == response.status
        assert "203.0.113.9" in (await response.json())["error"]
    inside = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "10.1.1.1")]
    async with session.post("/hook", data=b"x", headers=[*AUTH.items(), *inside]) as response:
        assert 200 == response.status


async def test_an_unauthenticated_expect_100_continue_gets_401_not_continue(serve: Serve) -> None:
    """The interim 100 is sent only once the guard passed: a client without the token is
    refused before it uploads its body."""
    _, metrics, port = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /hook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n"
        )
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
    finally:
        writer.close()
    assert b" 401 " in status_line
    assert 1 == counted(metrics, "/hook", 401)
