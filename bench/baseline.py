"""Baseline: a bare aiohttp + uvloop handler that only parses the Falco JSON and hashes two
fields, pinned to the daemon's core, under the same open-loop load generator. What zen-watcher's
pipeline costs is the distance between this and `bench.intake`.

    python -m bench.baseline
"""

from __future__ import annotations

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


async def handle(request: web.Request) -> web.Response:
    alert = orjson.loads(await request.read())
    hashlib.sha256(orjson.dumps([alert.get("rule"), alert.get("priority")])).hexdigest()
    return web.Response(body=b'{"accepted":1}', content_type="application/json")


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
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
        return 0
    port = free_port()
    server = subprocess.Popen(
        ["taskset", "-c", DAEMON_CPU, sys.executable, "-m", "bench.baseline", "--serve", str(port)]
    )
    time.sleep(2)
    target = BareServer(webhook_port=port, process=server)
    try:
        for rate in (2000, 5000, 8000, 10000):
            point = load_point(
                target, kind="falco-repeat", rate=rate, duration=5, path="/falco/webhook"
            )
            print(
                f"bare handler {rate}/s: achieved {point['achieved_rps']:.0f}/s, p99 "
                f"{point['p99_ms']} ms, server CPU {point['server_cpu_us_per_event']:.0f} µs/request"
                f" (loadgen CPU {point['loadgen_cpu_seconds']} s of {point['elapsed_seconds']} s)",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
