"""Our real KubeClient with hooks around each call, for injected faults and delays.

`before(method, path, params)` runs ahead of each call (it may wait or raise: a fault that keeps
the request from the server); `after(method, path, answer)` runs once the server answered (it may
raise: an answer lost after the server applied the request). Every call is recorded in `calls`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from zenwatcher.kube.client import JSON_CONTENT, KubeClient, Params

Before = Callable[[str, str, Params | None], Awaitable[None]]
After = Callable[[str, str, dict[str, Any]], Awaitable[None]]


class HookedClient(KubeClient):
    """A KubeClient whose calls pass through `before` and `after` when they are set."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.before: Before | None = None
        self.after: After | None = None

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
            await self.before(method, path, params)
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
