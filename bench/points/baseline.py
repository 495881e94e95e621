"""Baseline: a bare aiohttp + uvloop handler that only parses the Falco JSON and hashes two
fields, pinned to the daemon's core, under the same open-loop load generator. What zen-watcher's
pipeline costs is the distance between this and `bench.points.intake`. The application also
serves /audit/webhook: parse the EventList with orjson and read each event's verb and resource,
what the audit intake is measured against (`bench.points.intake_ratio`). The same handler runs in a
web.Application (router, as the daemon serves) and on aiohttp's low-level web.Server (no
router, no application), to show what the application layer itself costs. A third server is no
HTTP framework at all: an asyncio Protocol that finds Content-Length, does the same parse and
hash and writes a fixed answer. It is not an HTTP server anyone should run (no chunked bodies,
no validation, no limits); it shows how much of the per-request cost is aiohttp's request and
response path rather than the socket and the event loop.

    python -m bench.points.baseline
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import cast

import orjson
import uvloop
from aiohttp import web

from bench.load.capacity import load_point
from bench.load.common import DAEMON_CPU
from tests.harness.controlplane.controlplane import free_port


async def handle(request: web.BaseRequest) -> web.Response:
    alert = orjson.loads(await request.read())
    hashlib.sha256(orjson.dumps([alert.get("rule"), alert.get("priority")])).hexdigest()
    return web.Response(body=b'{"accepted":1}', content_type="application/json")


async def handle_audit(request: web.BaseRequest) -> web.Response:
    """The audit baseline: parse the EventList and read each event's verb and resource."""
    events = orjson.loads(await request.read())["items"]
    for event in events:
        event.get("verb")
        (event.get("objectRef") or {}).get("resource")
    return web.Response(body=b'{"accepted":%d}' % len(events), content_type="application/json")


_FIXED_ANSWER = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{"accepted":1}'
)


class FramelessProtocol(asyncio.Protocol):
    """Just enough HTTP/1.1 for the load generator's keep-alive POSTs with Content-Length."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (head_end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:head_end].lower()
            start = head.find(b"content-length:") + len(b"content-length:")
            line_end = head.find(b"\r\n", start)
            length = int(head[start : line_end if line_end >= 0 else None])
            body_start = head_end + 4
            if len(self.buffer) < body_start + length:
                return
            alert = orjson.loads(self.buffer[body_start : body_start + length])
            self.buffer = self.buffer[body_start + length :]
            hashlib.sha256(orjson.dumps([alert.get("rule"), alert.get("priority")])).hexdigest()
            assert self.transport is not None
            self.transport.write(_FIXED_ANSWER)


def serve_frameless(port: int) -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_server(FramelessProtocol, "127.0.0.1", port)
        await asyncio.Event().wait()

    uvloop.run(main())


def serve_low_level(port: int) -> None:
    async def main() -> None:
        runner = web.ServerRunner(web.Server(handle, access_log=None))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    uvloop.run(main())


def serve(port: int) -> None:
    app = web.Application()
    app.router.add_post("/falco/webhook", handle)
    app.router.add_post("/audit/webhook", handle_audit)
    web.run_app(
        app, host="127.0.0.1", port=port, access_log=None, loop=uvloop.new_event_loop(), print=None
    )


@dataclass(frozen=True)
class BareServer:
    """The bare handler's process, as bench.load.capacity.load_point takes a server under load."""

    webhook_port: int
    process: subprocess.Popen[bytes]


def main() -> int:
    aiohttp_rates = (2000, 5000, 8000, 10000)
    servers = {
        "--serve": ("application", serve, aiohttp_rates),
        "--serve-low-level": ("low-level server", serve_low_level, aiohttp_rates),
        # Higher rates: where this one stops, the generator's own core may be the limit.
        "--serve-frameless": ("no framework", serve_frameless, (5000, 10000, 15000, 20000)),
    }
    if len(sys.argv) > 2 and sys.argv[1] in servers:
        servers[sys.argv[1]][1](int(sys.argv[2]))
        return 0
    for flag, (name, _, rates) in servers.items():
        port = free_port()
        command = [sys.executable, "-m", "bench.points.baseline", flag, str(port)]
        server = subprocess.Popen(["taskset", "-c", DAEMON_CPU, *command])
        time.sleep(2)
        target = BareServer(webhook_port=port, process=server)
        try:
            for rate in rates:
                point = load_point(
                    target, kind="falco-repeat", rate=rate, duration=5, path="/falco/webhook"
                )
                print(
                    f"bare handler, {name}, {rate}/s: achieved {point['achieved_rps']:.0f}/s, "
                    f"p99 {point['p99_ms']} ms, server CPU "
                    f"{point['server_cpu_us_per_event']:.0f} µs/request (loadgen CPU "
                    f"{point['loadgen_cpu_seconds']} s of {point['elapsed_seconds']} s)",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
