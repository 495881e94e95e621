"""Open-loop HTTP load generator: a fixed arrival rate, latency from the scheduled send time.

Runs as its own process (pinned by the caller): raw asyncio streams on uvloop with pre-encoded
requests over persistent HTTP/1.1 connections, so the generator itself stays cheap. A request
whose connection is busy waits, and that wait counts in its latency, so a slow server cannot
hide its queueing. Prints one JSON object: counts, achieved rate, percentiles, own CPU seconds.

    python -m bench.loadgen --port 8080 --path /falco/webhook --rate 5000 --duration 10 \
        --kind falco-repeat --token T
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections.abc import Callable

import orjson
import uvloop

from bench.common import percentiles
from tests import payloads


def falco_alert(index: int) -> bytes:
    return orjson.dumps(
        {
            "rule": "Terminal shell in container",
            "priority": "Warning",
            "output": f"shell {index}",
            "time": "2026-01-01T00:00:00.000000000Z",
            "output_fields": {
                "k8s.ns.name": "bench",
                "k8s.pod.name": f"pod-{index}",
                "container.id": "c1",
                "proc.name": "bash",
            },
        }
    )


def body_factory(kind: str, batch: int) -> Callable[[int], bytes]:
    if kind == "falco-repeat":
        fixed = falco_alert(0)
        return lambda _: fixed
    if kind == "falco-unique":
        return falco_alert
    events = payloads.audit_events()
    items = [events[i % len(events)] for i in range(batch)]
    fixed = payloads.event_list(items)
    return lambda _: fixed


def request_bytes(path: str, port: int, token: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.ok = 0
        self.non2xx = 0
        self.errors = 0


async def one_connection(
    port: int, queue: asyncio.Queue[tuple[float, bytes] | None], stats: Stats
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (item := await queue.get()) is not None:
            scheduled, request = item
            try:
                writer.write(request)
                status = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                stats.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            stats.latencies.append(time.perf_counter() - scheduled)
            if 200 <= status < 300:
                stats.ok += 1
            else:
                stats.non2xx += 1
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run(args: argparse.Namespace) -> dict[str, object]:
    make_body = body_factory(args.kind, args.batch)
    stats = Stats()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    workers = [
        asyncio.create_task(one_connection(args.port, queue, stats))
        for _ in range(args.connections)
    ]
    total = int(args.rate * args.duration)
    started = time.perf_counter()
    for index in range(total):
        scheduled = started + index / args.rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(
            (scheduled, request_bytes(args.path, args.port, args.token, make_body(index)))
        )
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers, return_exceptions=True)
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    events_per_request = args.batch if args.kind == "audit" else 1
    return {
        "kind": args.kind,
        "target_rate": args.rate,
        "requests": total,
        "ok": stats.ok,
        "non2xx": stats.non2xx,
        "errors": stats.errors,
        "achieved_rps": round((stats.ok + stats.non2xx) / elapsed, 1),
        "events_per_second": round(stats.ok * events_per_request / elapsed, 1),
        "loadgen_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "elapsed_seconds": round(elapsed, 2),
        **{key: round(value, 2) for key, value in percentiles(stats.latencies).items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--kind", choices=["falco-repeat", "falco-unique", "audit"], required=True)
    parser.add_argument("--batch", type=int, default=400, help="events per audit EventList")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    result = uvloop.run(run(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
