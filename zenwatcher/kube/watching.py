"""Lists and watch streams of one resource, as typed async iterators (kopf's watching.py).

`list_pages` pages a list with `limit`/`continue`; a 410 on an expired continue token is raised
as `errors.Gone` so the caller restarts the list. `watch_stream` owns one HTTP watch with
bookmarks, a server `timeoutSeconds` and a client inactivity timeout; an in-stream ERROR event
is raised as the ApiError its Status names (410 → `errors.Gone`), as client-go does.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import aiohttp
import structlog

from zenwatcher.kube import errors
from zenwatcher.kube.client import KubeClient

logger = structlog.get_logger()

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))

# Status reasons that mean 410 when a server leaves the code out of an ERROR event.
_EXPIRED_REASONS = frozenset({"Expired", "Gone"})
# A watch closed this fast with no event is a broken server or proxy, not a server timeout;
# treating it as an error (with backoff) avoids a hot re-watch loop (client-go does the same).
SHORT_WATCH_SECONDS = 1.0
DEFAULT_INACTIVITY_TIMEOUT = 120.0  # two bookmark periods: the API server sends one a minute
_RANDOM = random.Random()  # noqa: S311 - spreads watch timeouts; not a secret


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One event of a watch stream; BOOKMARK objects carry only a resourceVersion."""

    type: EventType
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        """The object's resourceVersion, "" when the server sent none."""
        return resource_version_of(self.object)


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a list; every page of one list shares the snapshot's resourceVersion."""

    items: Sequence[dict[str, Any]]
    resource_version: str


class StreamIdle(errors.TransportError):
    """No line at all (not even a bookmark) arrived for the inactivity timeout."""


def watch_timeout(bounds: tuple[int, int], *, rng: random.Random = _RANDOM) -> int:
    """A server timeoutSeconds from `bounds`, so many clients' watches do not end in step."""
    low, high = bounds
    if not 0 < low <= high:
        raise ValueError(f"watch timeout range must be 0 < low <= high, got {bounds!r}")
    return rng.randint(low, high)


def resource_version_of(document: Mapping[str, Any]) -> str:
    """`metadata.resourceVersion` of an object or a list, "" when absent."""
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        return ""
    return str(metadata.get("resourceVersion") or "")


def decode_event(line: Mapping[str, Any]) -> WatchEvent | None:
    """A watch line as a WatchEvent; None for a type we do not know; raises on ERROR."""
    event_type = line.get("type")
    document = line.get("object")
    if event_type == "ERROR":
        raise status_error(document if isinstance(document, dict) else {})
    if event_type in EVENT_TYPES and isinstance(document, dict):
        return WatchEvent(type=event_type, object=document)
    return None


def status_error(status: dict[str, Any]) -> errors.ApiError:
    """The typed ApiError for an ERROR event's Status (410 → Gone, 404 → NotFound, …)."""
    code = status.get("code")
    if not isinstance(code, int) or code < 400:
        code = 410 if status.get("reason") in _EXPIRED_REASONS else 500
    return errors.error_for(code, status)


async def list_pages(
    client: KubeClient,
    *,
    path: str,
    page_size: int = 500,
    accept: str | None = None,
    label_selector: str = "",
) -> AsyncGenerator[ListPage, None]:
    """The pages of a consistent list of `path`, `page_size` objects at a time (in the
    representation `accept` asks for, e.g. PartialObjectMetadataList).

    No resourceVersion is sent: the list is a quorum read, never older than anything a caller
    saw before (client-go's first list asks for "0", which a lagging cache may answer).
    """
    token = ""
    while True:
        params: dict[str, str | int | bool] = {"limit": page_size}
        if label_selector:
            params["labelSelector"] = label_selector
        if token:
            params["continue"] = token
        answer = await client.request("GET", path, params=params, accept=accept)
        metadata = answer.get("metadata") or {}
        token = str(metadata.get("continue") or "")
        # The items leave this frame with the page, so the caller alone decides their life.
        yield ListPage(
            items=answer.pop("items", None) or [], resource_version=resource_version_of(answer)
        )
        if not token:
            return


async def watch_stream(
    client: KubeClient,
    *,
    path: str,
    resource_version: str,
    server_timeout: int,
    inactivity_timeout: float,
    accept: str | None = None,
    label_selector: str = "",
) -> AsyncGenerator[WatchEvent, None]:
    """Events of one watch of `path` from `resource_version`, until the server ends it.

    Raises `StreamIdle` when nothing arrived for `inactivity_timeout` seconds, the ApiError of
    an ERROR event, and TransportError when the connection breaks.
    """
    params: dict[str, str | int | bool] = {
        "resourceVersion": resource_version,
        "allowWatchBookmarks": True,
    }
    if label_selector:
        # The server sends ADDED when an object starts matching and DELETED when it stops.
        params["labelSelector"] = label_selector
    lines = client.stream_lines(
        path,
        params=params,
        server_timeout=server_timeout,
        inactivity_timeout=inactivity_timeout,
        accept=accept,
    )
    # Close the HTTP stream as soon as our consumer stops, not when the generator is collected.
    async with contextlib.aclosing(lines):
        try:
            async for line in lines:
                event = decode_event(line)
                if event is None:
                    logger.warning("watch_event_ignored", path=path, type=line.get("type"))
                    continue
                yield event
        except errors.TransportError as error:
            # aiohttp's sock_read timeout: the connection is up but silent.
            if isinstance(error.__cause__, aiohttp.SocketTimeoutError):
                raise StreamIdle(str(error)) from error
            raise
