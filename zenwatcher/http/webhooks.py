"""POST /falco/webhook and POST /audit/webhook: parse, split, check capacity, run the intake.

Answers (docs/design.md §6): 200 with accepted/deduplicated/filtered/rejected counts; 400 for a body
that is not JSON or not an alert/event (list), or that cannot be read (a broken chunked
encoding); 408 for a large body not received in time; 413 over the size limit (aiohttp raises
it while reading) or with more events than the write queue holds; 415 for a compressed body;
503 with Retry-After when the write queue cannot take the request's events now or the pod is
shutting down. A request's events are either all processed or none is.

Memory: a body over SMALL_BODY_BYTES (or of unknown length) is read and parsed only while one
of MAX_LARGE_BODIES slots is free, and must arrive within BODY_READ_SECONDS, so a burst of
16 MiB bodies, or a client sending one slowly, cannot hold more than a few at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from zenwatcher.http.guard import Handler, json_error
from zenwatcher.mapping.rejection import Rejected
from zenwatcher.pipeline.intake import EventIntake

RETRY_AFTER_SECONDS = "1"
SMALL_BODY_BYTES = 1024 * 1024  # Falco alerts and audit batches of the default size fit
MAX_LARGE_BODIES = 4
BODY_READ_SECONDS = 30.0


@dataclass(slots=True)
class Admission:
    """Whether new requests may enter the pipeline, and how much room the queue has."""

    free_slots: Callable[[], int]
    capacity: int = 1 << 62  # a request with more events than this can never be taken
    draining: bool = False
    # Shared by every webhook route: at most this many large bodies in memory at once.
    large_bodies: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_LARGE_BODIES)
    )


def make_handler(
    *, intake: EventIntake, split: Callable[[Any], list[Any]], admission: Admission
) -> Handler:
    """The POST handler for one source."""

    async def handler(request: web.BaseRequest) -> web.Response:
        refusal = _refusal(request, admission)
        if refusal is not None:
            return refusal
        length = request.content_length
        if length is None or length > SMALL_BODY_BYTES:
            return await large(request)
        try:
            body = _arrived(request, length)
            if body is None:
                body = await request.read()
        except (HttpProcessingError, RequestPayloadError) as error:
            return _unreadable(error)
        return respond(body)

    async def large(request: web.BaseRequest) -> web.Response:
        """A body over SMALL_BODY_BYTES, or of unknown length: read while one of the few
        slots is free, within BODY_READ_SECONDS."""
        async with admission.large_bodies:
            try:
                async with asyncio.timeout(BODY_READ_SECONDS):
                    body = await request.read()
            except TimeoutError:
                return json_error(408, f"request body not received in {BODY_READ_SECONDS:.0f} s")
            except (HttpProcessingError, RequestPayloadError) as error:
                return _unreadable(error)
            return respond(body)

    def respond(body: bytes) -> web.Response:
        """The answer to one whole body: no await from the capacity check to the intake."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            return json_error(400, f"invalid JSON: {error}")
        try:
            events = split(payload)
        except Rejected as rejected:
            return json_error(400, str(rejected))
        if len(events) > admission.capacity:
            message = (
                f"{len(events)} events in one request; the write queue holds {admission.capacity}"
            )
            return json_error(413, message)
        if len(events) > admission.free_slots():
            return _unavailable("write queue is full")
        tally = intake.process(events)
        status = 400 if tally.rejected and tally.rejected == len(events) else 200
        return web.Response(
            status=status, body=orjson.dumps(tally.as_dict()), content_type="application/json"
        )

    return handler


def _refusal(request: web.BaseRequest, admission: Admission) -> web.Response | None:
    """The answer to a request refused before its body is read, or None."""
    if admission.draining:
        return _unavailable("shutting down")
    encoding = request.headers.get("Content-Encoding")
    if encoding is not None and encoding.lower() not in ("", "identity"):
        # Decompressing would let a small body take far more memory than the size limit.
        return json_error(415, f"Content-Encoding {encoding} is not supported: send JSON")
    return None


def _arrived(request: web.BaseRequest, length: int) -> bytes | None:
    """A body of `length` bytes that aiohttp has already received whole (as most small ones
    are when their handler starts), taken in one call: `read()`'s loop of awaited chunks costs
    a Falco alert several times that. None while it is still arriving, or over the size limit,
    which `read()` answers with 413."""
    content = request.content
    if content.is_eof() and length <= request.client_max_size:
        return content.read_nowait()
    return None


def _unreadable(error: Exception) -> web.Response:
    return json_error(400, f"unreadable request body: {error}")


def _unavailable(message: str) -> web.Response:
    return json_error(503, message, headers={"Retry-After": RETRY_AFTER_SECONDS})
