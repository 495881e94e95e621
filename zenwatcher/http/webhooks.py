"""POST /falco/webhook and POST /audit/webhook: parse, split, check capacity, run the intake.

Answers (DESIGN.md §6): 200 with accepted/deduplicated/filtered/rejected counts; 400 for a body
that is not JSON or not an alert/event (list); 413 over the size limit (aiohttp raises it while
reading); 503 with Retry-After when the write queue cannot take the request's events or the pod
is shutting down. A request's events are either all processed or none is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from zenwatcher.http.guard import Handler, json_error
from zenwatcher.mapping.rejection import Rejected
from zenwatcher.pipeline.intake import EventIntake

RETRY_AFTER_SECONDS = "1"


@dataclass(slots=True)
class Admission:
    """Whether new requests may enter the pipeline, and how much room the queue has."""

    free_slots: Callable[[], int]
    draining: bool = False


def make_handler(
    *, intake: EventIntake, split: Callable[[Any], list[Any]], admission: Admission
) -> Handler:
    """The POST handler for one source."""

    async def handler(request: web.Request) -> web.Response:
        if admission.draining:
            return _unavailable("shutting down")
        body = await request.read()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            return json_error(400, f"invalid JSON: {error}")
        try:
            events = split(payload)
        except Rejected as rejected:
            return json_error(400, str(rejected))
        if len(events) > admission.free_slots():
            return _unavailable("write queue is full")
        tally = intake.process(events)
        status = 400 if tally.rejected and tally.rejected == len(events) else 200
        return web.Response(
            status=status, body=orjson.dumps(tally.as_dict()), content_type="application/json"
        )

    return handler


def _unavailable(message: str) -> web.Response:
    return json_error(503, message, headers={"Retry-After": RETRY_AFTER_SECONDS})
