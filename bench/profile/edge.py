"""Where a Falco repeat's time goes in the handler, without the network: the daemon's whole
webhook handler (guard, body, intake, answer) against the bare aiohttp handler of
`bench.points.baseline`, on the same requests, in one process, and the intake alone.

The requests are aiohttp's own BaseRequest over one parsed message, each with the alert in a
real StreamReader; only the connection under them is a stand-in (a protocol whose flow control
does nothing, no writer: the handlers return their answers), so what is timed is what each
handler does with a request once aiohttp has parsed it, not parsing or writing.
The handlers take turns, each keeps its median of ROUNDS, so a busy machine skews them alike.

    taskset -c 0 python -m bench.profile.edge
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import HttpVersion11, web
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import CollectorRegistry
from yarl import URL

from bench.load.loadgen import falco_alert
from bench.points.baseline import handle as bare_handler
from bench.profile.intake import intake, per_event_us
from zenwatcher.http.app import make_webhook_handler
from zenwatcher.http.webhooks import Admission
from zenwatcher.mapping import falco
from zenwatcher.metrics import Metrics
from zenwatcher.settings import Settings

TOKEN = "edge-profile-token-0123456789"  # a benchmark's own
REQUESTS = 20000
ROUNDS = 5
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class _Connection:
    """Flow control of a connection that never needs it: the body is already in memory."""

    transport = None
    ssl_context = None
    peername = ("127.0.0.1", 40000)
    sockname = ("127.0.0.1", 8080)
    _reading_paused = False

    def pause_reading(self, **_: object) -> None:
        """Nothing to pause."""

    def resume_reading(self, **_: object) -> None:
        """Nothing to resume."""


def requests(body: bytes, count: int) -> list[web.BaseRequest]:
    """`count` POSTs of `body` to /falco/webhook, with the token, as aiohttp's server hands
    them to a handler: one parsed message, each with its own request and body stream."""
    loop = asyncio.get_running_loop()
    headers = CIMultiDict(
        {
            "Host": "127.0.0.1",
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }
    )
    message = RawRequestMessage(
        "POST",
        "/falco/webhook",
        HttpVersion11,
        CIMultiDictProxy(headers),
        tuple((k.encode(), v.encode()) for k, v in headers.items()),
        False,  # should_close
        None,  # compression
        False,  # upgrade
        False,  # chunked
        URL("/falco/webhook"),
    )
    connection = _Connection()
    task = asyncio.current_task()
    made = []
    for _ in range(count):
        payload = StreamReader(connection, 2**16, loop=loop)  # type: ignore[arg-type]
        payload.feed_data(body)
        payload.feed_eof()
        made.append(
            web.BaseRequest(
                message,
                payload,
                connection,  # type: ignore[arg-type]
                None,  # type: ignore[arg-type]  # the writer: no handler here writes itself
                task,  # type: ignore[arg-type]
                loop,
            )
        )
    return made


def daemon_handler(token: str = TOKEN) -> Handler:
    """The webhook handler as the daemon builds it, at the shipped defaults with a token."""
    settings = Settings.from_env({"WEBHOOK_AUTH_TOKEN": token, "POD_NAMESPACE": "zen-system"})
    return make_webhook_handler(
        settings=settings.webhook,
        metrics=Metrics(CollectorRegistry()),
        intakes={"falco": intake("falco"), "audit": intake("audit")},
        admission=Admission(free_slots=lambda: settings.pipeline.queue_size),
    )


async def per_request_us(handler: Handler, body: bytes) -> float:
    batch = requests(body, REQUESTS)
    started = time.perf_counter()
    for request in batch:
        response = await handler(request)
        assert response.status == 200, response.status
    return (time.perf_counter() - started) / REQUESTS * 1e6


async def measure() -> dict[str, float]:
    body = falco_alert(0)
    zen = daemon_handler()
    await zen(requests(body, 1)[0])  # the first alert is new: later ones are repeats
    falco_intake = intake("falco")

    def intake_alone() -> None:
        for _ in range(REQUESTS):
            falco_intake.process(falco.split_falco_body(orjson.loads(body)))

    falco_intake.process(falco.split_falco_body(orjson.loads(body)))  # new once, then repeats
    samples: dict[str, list[float]] = {"zen-watcher": [], "bare aiohttp": [], "intake": []}
    for _ in range(ROUNDS):
        samples["zen-watcher"].append(await per_request_us(zen, body))
        samples["bare aiohttp"].append(await per_request_us(bare_handler, body))
        samples["intake"].append(per_event_us(intake_alone, REQUESTS))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    medians = asyncio.run(measure())
    zen, bare, own = medians["zen-watcher"], medians["bare aiohttp"], medians["intake"]
    print(f"Falco repeat, one alert per request, median of {ROUNDS} rounds of {REQUESTS}:")
    print(f"  zen-watcher's handler: {zen:.1f} us per request")
    print(f"  bare aiohttp handler:  {bare:.1f} us per request")
    print(f"  difference:            {zen - bare:.1f} us")
    print(f"  the intake alone (parse, split, map or repeat key, dedup, count): {own:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
