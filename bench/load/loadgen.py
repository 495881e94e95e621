"""Open-loop HTTP load generator: a fixed arrival rate, latency from the scheduled send time.

Runs as its own process (pinned by the caller): raw asyncio streams on uvloop with pre-encoded
requests over persistent HTTP/1.1 connections, so the generator itself stays cheap. A request
whose connection is busy waits, and that wait counts in its latency, so a slow server cannot
hide its queueing. Prints one JSON object: counts, achieved rate, percentiles, own CPU seconds.

    python -m bench.load.loadgen --port 8080 --path /falco/webhook --rate 5000 --duration 10 \
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

from bench.load.common import percentiles
from tests.harness import payloads


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


# What fills a real audit log: controllers and kubelets reading and renewing. No audit rule
# matches these; built here in the shape the API server writes (audit.k8s.io/v1, Metadata level).
_ROUTINE_REQUESTS = (
    ("list", "pods", "", "kube-system", "system:serviceaccount:kube-system:replicaset-controller"),
    ("watch", "configmaps", "", "default", "system:node:worker-1"),
    ("get", "endpoints", "", "default", "system:kube-proxy"),
    ("update", "leases", "coordination.k8s.io", "kube-node-lease", "system:node:worker-2"),
)


def routine_audit_event(index: int) -> dict[str, object]:
    verb, resource, group, namespace, user = _ROUTINE_REQUESTS[index % len(_ROUTINE_REQUESTS)]
    prefix = f"/apis/{group}/v1" if group else "/api/v1"
    stamp = "2026-01-01T00:00:00.000000Z"
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"00000000-0000-4000-8000-{index:012d}",
        "stage": "ResponseComplete",
        "requestURI": f"{prefix}/namespaces/{namespace}/{resource}",
        "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.12"],
        "userAgent": "kube-controller-manager/v1.37.2",
        "objectRef": {
            "resource": resource,
            "namespace": namespace,
            "apiGroup": group,
            "apiVersion": "v1",
        },
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": stamp,
        "stageTimestamp": stamp,
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }


def audit_list(batch: int, *, finding_every: int) -> bytes:
    """An EventList of `batch` events; every `finding_every`-th is a fixture finding (1 = all)."""
    findings = payloads.audit_events()
    items = [
        findings[i % len(findings)] if i % finding_every == 0 else routine_audit_event(i)
        for i in range(batch)
    ]
    return payloads.event_list(items)


def body_factory(kind: str, batch: int) -> Callable[[int], bytes]:
    if kind == "falco-repeat":
        fixed = falco_alert(0)
        return lambda _: fixed
    if kind == "falco-unique":
        return falco_alert
    # "audit": every event a finding (the worst case); "audit-mix": one in 20.
    fixed = audit_list(batch, finding_every=1 if kind == "audit" else 20)
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
    events_per_request = args.batch if args.kind.startswith("audit") else 1
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
    parser.add_argument(
        "--kind", choices=["falco-repeat", "falco-unique", "audit", "audit-mix"], required=True
    )
    parser.add_argument("--batch", type=int, default=400, help="events per audit EventList")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    result = uvloop.run(run(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
