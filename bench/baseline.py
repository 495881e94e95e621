"""Baseline: a bare aiohttp + uvloop handler that only parses the Falco JSON and hashes two
fields, pinned to the daemon's core, under the same open-loop load generator. What zen-watcher's
pipeline costs is the distance between this and `bench.intake`. The same handler runs twice: in
a web.Application (router, as the daemon serves) and on aiohttp's low-level web.Server (no
router, no application), to show what the application layer itself costs.

    python -m bench.baseline
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import time
from dataclasses import dataclass

import orjson
import uvloop
from aiohttp import web

from bench.common import DAEMON_CPU
from bench.intake import load_point
from tests.controlplane.controlplane import free_port


async def handle(request: web.BaseRequest) -> web.Response:
    alert = orjson.loads(await request.read())
    hashlib.sha256(orjson.dumps([alert.get("rule"), alert.get("priority")])).hexdigest()
    return web.Response(body=b'{"accepted":1}', content_type="application/json")


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
    web.run_app(
        app, host="127.0.0.1", port=port, access_log=None, loop=uvloop.new_event_loop(), print=None
    )


@dataclass(frozen=True)
class BareServer:
    """The bare handler's process, as bench.intake.load_point takes a server under load."""

    webhook_port: int
    process: subprocess.Popen[bytes]


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] in ("--serve", "--serve-low-level"):
        (serve if sys.argv[1] == "--serve" else serve_low_level)(int(sys.argv[2]))
        return 0
    for name, flag in (("application", "--serve"), ("low-level server", "--serve-low-level")):
        port = free_port()
        command = [sys.executable, "-m", "bench.baseline", flag, str(port)]
        server = subprocess.Popen(["taskset", "-c", DAEMON_CPU, *command])
        time.sleep(2)
        target = BareServer(webhook_port=port, process=server)
        try:
            for rate in (2000, 5000, 8000, 10000):
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
