"""An informer: list, then watch from the list's resourceVersion, forever (client-go's reflector).

It lists page by page, hands every object to its handler and then the (namespace, name) set that
exists, and watches with bookmarks from the list's resourceVersion. A normal end of the stream
re-watches from the last resourceVersion seen; 410 Gone relists; other failures back off with
jitter; 404 means the resource is no longer served. It keeps no objects, only where to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, NoReturn, Protocol, TypeVar

import structlog

from zenwatcher.kube import errors, watching
from zenwatcher.kube.client import KubeClient
from zenwatcher.kube.watching import DEFAULT_INACTIVITY_TIMEOUT, SHORT_WATCH_SECONDS, watch_timeout
from zenwatcher.metrics import Metrics
from zenwatcher.pacing import Backoff

logger = structlog.get_logger()

RestartReason = Literal["normal_end", "gone", "timeout", "error"]
RelistReason = Literal["initial", "gone"]
ObjectKey = tuple[str, str]

# client-go's rule: no backoff for this long means the server is healthy again, so start over.
BACKOFF_RESET_SECONDS = 120.0

_T = TypeVar("_T")


class ResourceGone(Exception):
    """The resource is no longer served (its CRD was removed): stop this informer, rediscover."""


class HandlerError(Exception):
    """The handler raised an API or transport error; passed up, never retried as our own."""


class InformerHandler(Protocol):
    """What an informer feeds; it must not keep the informer waiting long."""

    async def on_object(self, obj: dict[str, Any]) -> None:
        """An object was added or modified, or is part of a (re)list."""

    async def on_deleted(self, obj: dict[str, Any]) -> None:
        """An object was deleted (its last state)."""

    async def on_listed(self, present: frozenset[ObjectKey]) -> None:
        """A (re)list completed: (namespace, name) of every object that exists now.

        Anything the handler knows that is missing was deleted while the informer was away.
        """


def object_key(obj: dict[str, Any]) -> ObjectKey:
    """(namespace, name); the namespace is "" for cluster-scoped objects."""
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


async def informer(
    *,
    client: KubeClient,
    path: str,
    resource: str,
    handler: InformerHandler,
    metrics: Metrics,
    server_timeout_range: tuple[int, int] = (300, 600),
    inactivity_timeout: float = DEFAULT_INACTIVITY_TIMEOUT,
    page_size: int = 500,
    backoff_factory: Callable[[], Backoff] = Backoff,
    synced: asyncio.Event | None = None,
    list_accept: str | None = None,
    watch_accept: str | None = None,
    label_selector: str = "",
) -> NoReturn:
    """List and watch `path` forever; raises ResourceGone when it is no longer served.

    `resource` labels metrics and logs; `synced` is set after the first complete list.
    `list_accept` and `watch_accept` ask for another representation (metadata only: lists
    and watches need different Accept headers); `label_selector` narrows the list and watch on
    the server.
    Handler exceptions propagate (its API and transport errors as HandlerError).
    """
    watch_timeout(server_timeout_range)  # refuse a bad range now, not at the first watch
    reflector = _Reflector(
        client=client,
        path=path,
        resource=resource,
        handler=handler,
        metrics=metrics,
        server_timeout_range=server_timeout_range,
        inactivity_timeout=inactivity_timeout,
        page_size=page_size,
        backoff=backoff_factory(),
        synced=synced,
        accepts=(list_accept, watch_accept),
        label_selector=label_selector,
    )
    await reflector.run()


class _Reflector:
    """One informer's state: where to resume, and its backoff; never the objects."""

    def __init__(
        self,
        *,
        client: KubeClient,
        path: str,
        resource: str,
        handler: InformerHandler,
        metrics: Metrics,
        server_timeout_range: tuple[int, int],
        inactivity_timeout: float,
        page_size: int,
        backoff: Backoff,
        synced: asyncio.Event | None,
        accepts: tuple[str | None, str | None] = (None, None),
        label_selector: str = "",
    ) -> None:
        self._client = client
        self._path = path
        self._resource = resource
        self._handler = handler
        self._metrics = metrics
        self._server_timeout_range = server_timeout_range
        self._inactivity_timeout = inactivity_timeout
        self._page_size = page_size
        self._backoff = backoff
        self._backed_off_at = float("-inf")
        self._synced = synced
        self._list_accept, self._watch_accept = accepts
        self._label_selector = label_selector
        self._log = logger.bind(resource=resource, path=path)
        # "" means: list before watching; the reason labels the relist metric.
        self._resource_version = ""
        self._relist_reason: RelistReason = "initial"

    async def run(self) -> NoReturn:
        while True:
            try:
                if self._resource_version:
                    await self._watch()
                else:
                    await self._list()
            except errors.NotFound as error:
                # A collection path answers 404 only when its resource type is not served.
                self._log.warning("resource_gone", error=str(error))
                raise ResourceGone(self._path) from error
            except errors.Gone as error:
                await self._expired(error)
            except watching.StreamIdle as error:
                self._restarted("timeout", error=str(error))
            except (errors.ApiError, errors.TransportError) as error:
                await self._failed(error)

    async def _list(self) -> None:
        """One complete list: every object to the handler, then the present set."""
        present: set[ObjectKey] = set()
        resource_version = ""
        pages = watching.list_pages(
            self._client,
            path=self._path,
            page_size=self._page_size,
            accept=self._list_accept,
            label_selector=self._label_selector,
        )
        async with contextlib.aclosing(pages):
            async for page in pages:
                resource_version = page.resource_version
                # Delivered objects are let go at once: a handler may wait (on the write
                # queue), and a page of large reports would otherwise stay whole meanwhile.
                items = list(reversed(page.items))
                del page
                while items:
                    obj = items.pop()
                    present.add(object_key(obj))
                    await self._deliver(self._handler.on_object, obj)
                    del obj
                    # The loop's turn between objects: a handler that does not wait would
                    # otherwise hold it for a whole page (50 reports mapped, 2,500 findings
                    # queued), and every write's answer waits meanwhile.
                    await asyncio.sleep(0)
        await self._deliver(self._handler.on_listed, frozenset(present))
        self._metrics.relists.labels(resource=self._resource, reason=self._relist_reason).inc()
        self._log.info(
            "informer_listed",
            reason=self._relist_reason,
            objects=len(present),
            resource_version=resource_version,
        )
        if not resource_version:
            # Watching needs a version to start from; relisting at once would spin. (A real
            # API server always sends one; a proxy in the way might not.)
            raise errors.TransportError(f"list of {self._path} answered no resourceVersion")
        self._resource_version = resource_version
        if self._synced is not None:
            self._synced.set()

    async def _watch(self) -> None:
        """One watch stream from the last resourceVersion, until the server ends it."""
        started, seen = time.monotonic(), 0
        stream = watching.watch_stream(
            self._client,
            path=self._path,
            resource_version=self._resource_version,
            server_timeout=watch_timeout(self._server_timeout_range),
            inactivity_timeout=self._inactivity_timeout,
            accept=self._watch_accept,
            label_selector=self._label_selector,
        )
        async with contextlib.aclosing(stream):
            async for event in stream:
                seen += 1
                self._backoff.reset()
                await self._apply(event)
        if not seen and time.monotonic() - started < SHORT_WATCH_SECONDS:
            raise errors.TransportError("very short watch: closed at once with no event")
        self._restarted("normal_end", events=seen)

    async def _apply(self, event: watching.WatchEvent) -> None:
        # Deliver first, then advance: an event whose delivery failed is seen again.
        if event.type == "DELETED":
            await self._deliver(self._handler.on_deleted, event.object)
        elif event.type != "BOOKMARK":
            await self._deliver(self._handler.on_object, event.object)
        self._resource_version = event.resource_version or self._resource_version

    async def _deliver(self, call: Callable[[_T], Awaitable[None]], argument: _T) -> None:
        # The handler's own API errors must not pass for ours (a 404 would read as ResourceGone).
        try:
            await call(argument)
        except (errors.ApiError, errors.TransportError) as error:
            raise HandlerError(f"{self._resource} handler failed: {error}") from error

    async def _expired(self, error: errors.Gone) -> None:
        """410: our resourceVersion (or continue token) was compacted away; relist."""
        if self._resource_version:
            self._restarted("gone", error=str(error))
        self._resource_version, self._relist_reason = "", "gone"
        # client-go waits one backoff step before relisting too: a 410 loop must not hammer lists.
        await asyncio.sleep(self._next_delay(None))

    async def _failed(self, error: errors.ApiError | errors.TransportError) -> None:
        """Anything else: back off (honouring Retry-After), then resume where we were."""
        if self._resource_version:
            self._restarted("error", error=str(error))
        hint = errors.retry_hint(error)
        delay = self._next_delay(hint)
        self._log.warning(
            "informer_backoff",
            delay=round(delay, 3),
            listing=not self._resource_version,
            error=str(error),
        )
        await asyncio.sleep(delay)

    def _next_delay(self, hint: float | None) -> float:
        # Events reset the backoff too, but a quiet resource may send none for hours.
        now = time.monotonic()
        if now - self._backed_off_at > BACKOFF_RESET_SECONDS:
            self._backoff.reset()
        self._backed_off_at = now
        return self._backoff.next_delay(hint=hint)

    def _restarted(self, reason: RestartReason, **data: Any) -> None:
        self._metrics.watch_restarts.labels(resource=self._resource, reason=reason).inc()
        log = self._log.debug if reason == "normal_end" else self._log.info
        log("watch_restarted", reason=reason, resource_version=self._resource_version, **data)
