"""A Falco repeat's handler time as served under load, beside its time in a tight loop.

`bench.profile.edge` times each handler on the same request over and over, where its code and
data stay in the core's caches. Served, a handler runs once per request between aiohttp's
parsing and writing, the kernel's socket work and the load generator on the other core, so the
same code takes longer. This command serves the daemon's webhook handler (shipped defaults,
with a token) and the bare aiohttp handler of `bench.points.baseline`, each on aiohttp's
low-level server in its own process pinned to CPU 0, drives both in turns at one rate with the
open-loop generator on CPU 1, and prints, per handler: its median time per call as served
(timed around each call, in the server), the server's CPU per request, and its median time in
the tight loop (`bench.profile.edge`'s measure, run here on CPU 0 before the servers start).

    python -m bench.profile.served [--rate 8000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench.load.capacity import load_point
from bench.load.common import DAEMON_CPU, TOKEN
from bench.points.baseline import BareServer
from bench.points.baseline import handle as bare_handler
from bench.profile import edge
from tests.harness.controlplane.controlplane import free_port
from zenwatcher.heap import settle_after_start
from zenwatcher.http.serving import Server

SECONDS = 4.0  # per point


async def serve(port: int, which: str) -> float:
    """Serve one handler, timing each call, until SIGTERM; its median time per call (s)."""
    handler = edge.daemon_handler(token=TOKEN) if which == "zen-watcher" else bare_handler
    times: list[float] = []
    clock = time.perf_counter

    async def timed(request: Any) -> Any:
        started = clock()
        response = await handler(request)
        times.append(clock() - started)
        return response

    server = Server(timed, port=port, host="127.0.0.1")
    await server.start()
    if which == "zen-watcher":
        settle_after_start()  # as the daemon does once it has started
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()
    return statistics.median(times)


def spawn(which: str, report: Path) -> BareServer:
    port = free_port()
    command = ["taskset", "-c", DAEMON_CPU, sys.executable, "-m", "bench.profile.served"]
    process = subprocess.Popen([*command, "--serve", str(port), which, str(report)])
    time.sleep(3)
    return BareServer(webhook_port=port, process=process)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile.served", description=__doc__)
    parser.add_argument("--rate", type=float, default=8000, help="requests per second")
    parser.add_argument("--rounds", type=int, default=4, help="points per handler, in turns")
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "HANDLER", "REPORT"))
    parser.add_argument("--tight", action="store_true", help="only the tight loop, as JSON")
    args = parser.parse_args()
    if args.tight:
        print(orjson.dumps(asyncio.run(edge.measure())).decode())
        return 0
    if args.serve:
        port, which, report = args.serve
        median = uvloop.run(serve(int(port), which))
        Path(report).write_bytes(orjson.dumps({"median_us": median * 1e6}))
        return 0
    # The tight loop on the servers' core too, before they start.
    command = ["taskset", "-c", DAEMON_CPU, sys.executable, "-m", "bench.profile.served"]
    tight_run = subprocess.run([*command, "--tight"], capture_output=True, check=True)
    in_loop = orjson.loads(tight_run.stdout.splitlines()[-1])
    names = ("zen-watcher", "bare aiohttp")
    folder = Path(tempfile.mkdtemp(prefix="zen-served-"))
    reports = {name: folder / f"{name.split()[0]}.json" for name in names}
    servers = {name: spawn(name, reports[name]) for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    try:
        for _ in range(args.rounds):
            for name, target in servers.items():
                point = load_point(
                    target,
                    kind="falco-repeat",
                    rate=args.rate,
                    duration=SECONDS,
                    path="/falco/webhook",
                )
                cpu[name].append(point["server_cpu_us_per_event"])
    finally:
        for target in servers.values():
            target.process.terminate()
            target.process.wait()
    print(
        f"Falco repeats at {args.rate:.0f} requests/s, {args.rounds} points of {SECONDS:.0f} s each:"
    )
    for name in names:
        served = orjson.loads(reports[name].read_bytes())["median_us"]
        tight = in_loop[name]
        print(
            f"  {name:13} handler served {served:5.1f} us per call (median), "
            f"in a tight loop {tight:4.1f} us ({served / tight:.1f}x); "
            f"server CPU {statistics.median(cpu[name]):.1f} us per request (median)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
