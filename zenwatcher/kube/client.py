"""A small JSON client for the Kubernetes API on one aiohttp session.

Every call is bounded by a timeout; non-2xx answers become typed `ApiError`s carrying the
server's Status (and Retry-After); connection failures and timeouts become `TransportError`.
Watch streams are read line by line with an inactivity timeout, on a connection pool of their
own: over HTTP/1.1 each watch holds a connection for its whole life (client-go multiplexes them
on HTTP/2), so a shared, bounded pool would let enough watches starve every other call.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp
import orjson
from aiohttp.http_exceptions import HttpProcessingError

from zenwatcher.kube import errors
from zenwatcher.kube.config import Connection

JSON_CONTENT = "application/json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
USER_AGENT = "zen-watcher"

Params = Mapping[str, str | int | bool]

# One watch event is one object; etcd refuses objects over 1.5 MiB by default (the API server
# caps request bodies at 3 MiB). aiohttp's own line reader stops at 512 KiB, below a large
# trivy report, so watch lines are split here, with a bound far above any real object.
MAX_WATCH_LINE_BYTES = 64 * 1024 * 1024


class KubeClient:
    """JSON requests and watch streams against one API server."""

    def __init__(
        self, *, connection: Connection, timeout: float = 10.0, max_connections: int = 64
    ) -> None:
        self._connection = connection
        self._timeout = timeout
        self._session = _session(connection, limit=max_connections)
        # Unbounded: one connection per running watch, and the watches are a fixed set.
        self._watch_session = _session(connection, limit=0)

    async def close(self) -> None:
        await self._session.close()
        await self._watch_session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        content_type: str = JSON_CONTENT,
        timeout: float | None = None,
        accept: str | None = None,
    ) -> dict[str, Any]:
        """One call; returns the decoded JSON answer or raises ApiError / TransportError.
        `accept` asks for another representation (a metadata-only list)."""
        headers = await self._headers()
        if accept:
            headers["Accept"] = accept
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = orjson.dumps(body)
        try:
            async with self._session.request(
                method,
                self._connection.base_url + path,
                params=_query(params),
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout or self._timeout),
            ) as response:
                payload = await response.read()
                if response.status >= 300:
                    raise _api_error(response, payload)
                return _decode(payload)
        except (aiohttp.ClientError, HttpProcessingError, TimeoutError) as error:
            raise errors.TransportError(f"{method} {path}: {error!r}") from error

    async def stream_lines(
        self,
        path: str,
        *,
        params: Params | None = None,
        server_timeout: int,
        inactivity_timeout: float,
        accept: str | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Decoded JSON lines of a watch; ends when the server closes the stream.

        A stream with no line (bookmarks included) for `inactivity_timeout` seconds is treated
        as dead and raises TransportError, so a silently broken connection is noticed.
        `accept` asks for another representation of the objects (metadata only).
        """
        headers = await self._headers()
        if accept:
            headers["Accept"] = accept
        query = {**_query(params), "watch": "true", "timeoutSeconds": str(server_timeout)}
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._timeout, sock_read=inactivity_timeout
        )
        try:
            async with self._watch_session.get(
                self._connection.base_url + path, params=query, headers=headers, timeout=timeout
            ) as response:
                if response.status >= 300:
                    raise _api_error(response, await response.read())
                async for line in _lines(response.content, path=path):
                    if line.strip():
                        yield _decode(line)
        except (aiohttp.ClientError, HttpProcessingError, TimeoutError) as error:
            raise errors.TransportError(f"watch {path}: {error!r}") from error

    async def _headers(self) -> dict[str, str]:
        authorization = await self._connection.authorization()
        return {"Authorization": authorization} if authorization else {}


def _session(connection: Connection, *, limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            ssl=connection.ssl_context, limit=limit, keepalive_timeout=60
        ),
        json_serialize=lambda value: orjson.dumps(value).decode(),
        headers={"User-Agent": USER_AGENT, "Accept": JSON_CONTENT},
    )


async def _lines(
    content: aiohttp.StreamReader, *, path: str, limit: int = MAX_WATCH_LINE_BYTES
) -> AsyncGenerator[bytes, None]:
    """The newline-separated lines of a stream, each at most `limit` bytes; the last one even
    without its newline."""
    buffer = bytearray()
    async for chunk in content.iter_any():
        scanned = len(buffer)  # the bytes before this chunk hold no newline
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", max(start, scanned))) >= 0:
            yield bytes(buffer[start:end])
            start = end + 1
        del buffer[:start]
        if len(buffer) > limit:
            raise errors.TransportError(
                f"watch {path}: a line is longer than {limit} bytes; no object is that large"
            )
    if buffer:
        yield bytes(buffer)


def _query(params: Params | None) -> dict[str, str]:
    if not params:
        return {}
    return {
        key: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for key, value in params.items()
    }


def _decode(payload: bytes) -> dict[str, Any]:
    if not payload:
        return {}
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise errors.TransportError(f"API answer is not JSON: {payload[:200]!r}") from error
    return document if isinstance(document, dict) else {"items": document}


def _api_error(response: aiohttp.ClientResponse, payload: bytes) -> errors.ApiError:
    try:
        body = orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError:
        body = {"message": payload[:500].decode(errors="replace")}
    retry_after = errors.parse_retry_after(response.headers.get("Retry-After"))
    return errors.error_for(
        response.status, body if isinstance(body, dict) else {}, retry_after=retry_after
    )
