"""Our real KubeClient with hooks around each call, for injected faults and delays.

`before(method, path, params, body)` runs ahead of each request (it may wait or raise: a fault
that keeps the request from the server); `after(method, path, answer)` runs once the server
answered (it may raise: an answer lost after the server applied the request). Every request is
recorded in `calls`. `before_watch(path, server_timeout, inactivity_timeout)` runs ahead of each
watch stream and answers the two timeouts to use (it may raise: a watch that cannot connect).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from zenwatcher.kube.client import JSON_CONTENT, KubeClient, Params

Before = Callable[[str, str, Params | None, Any], Awaitable[None]]
After = Callable[[str, str, dict[str, Any]], Awaitable[None]]
BeforeWatch = Callable[[str, int, float], Awaitable[tuple[int, float]]]


class HookedClient(KubeClient):
    """A KubeClient whose calls pass through `before`, `after` and `before_watch` when set."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.before: Before | None = None
        self.after: After | None = None
        self.before_watch: BeforeWatch | None = None

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
        self.calls.append((method, path, dict(params or {})))
        if self.before is not None:
            await self.before(method, path, params, body)
        answer = await super().request(
            method,
            path,
            params=params,
            body=body,
            content_type=content_type,
            timeout=timeout,
            accept=accept,
        )
        if self.after is not None:
            await self.after(method, path, answer)
        return answer

    async def stream_lines(
        self,
        path: str,
        *,
        params: Params | None = None,
        server_timeout: int,
        inactivity_timeout: float,
        accept: str | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        if self.before_watch is not None:
            server_timeout, inactivity_timeout = await self.before_watch(
                path, server_timeout, inactivity_timeout
            )
        lines = super().stream_lines(
            path,
            params=params,
            server_timeout=server_timeout,
            inactivity_timeout=inactivity_timeout,
            accept=accept,
        )
        async with contextlib.aclosing(lines):
            async for line in lines:
                yield line
