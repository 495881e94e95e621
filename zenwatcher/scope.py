"""Which namespaces this instance watches and writes (docs/design.md §7.3).

Static: WATCH_NAMESPACE's list, or every namespace. Dynamic: WATCH_NAMESPACE_SELECTOR, a label
selector the API server applies to a list and watch of Namespaces; it sends ADDED when a
namespace starts matching (labelled, or created with the label) and DELETED when it stops
(relabelled, or deleted), so the set here follows the cluster without a redeploy. Every pod
runs that informer (the webhook intake needs the set, not only the leader); listeners — the
leader's report controller — hear each namespace entering and leaving. POD_NAMESPACE is always
among the Observation namespaces: findings without a namespace are written there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

import structlog

from zenwatcher.informers import informer
from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics
from zenwatcher.settings import Settings

logger = structlog.get_logger()
NAMESPACES_PATH = "/api/v1/namespaces"


class ScopeListener(Protocol):
    """Told of every change of a dynamic scope, synchronously and in order."""

    def namespace_entered(self, namespace: str) -> None: ...

    def namespace_left(self, namespace: str) -> None: ...


class NamespaceScope:
    """The namespaces in scope now; with a selector, also the informer handler that keeps them."""

    def __init__(
        self, *, pod_namespace: str, namespaces: tuple[str, ...] = (), selector: str = ""
    ) -> None:
        if namespaces and selector:
            raise ValueError("a namespace list or a selector, not both")
        self.selector = selector
        self._pod_namespace = pod_namespace
        self._static = namespaces
        self._matching: set[str] = set()
        self._listeners: list[ScopeListener] = []
        # Set once the selector's first list is in; at once for a static scope.
        self.synced = asyncio.Event()
        if not selector:
            self.synced.set()

    @classmethod
    def from_settings(cls, settings: Settings) -> NamespaceScope:
        return cls(
            pod_namespace=settings.pod_namespace,
            namespaces=settings.watch_namespaces,
            selector=settings.watch_namespace_selector,
        )

    @property
    def dynamic(self) -> bool:
        return bool(self.selector)

    def watched(self) -> tuple[str, ...]:
        """Namespaces whose reports are watched; () = all of them, for a static scope only (a
        selector that matches nothing watches nothing)."""
        return tuple(sorted(self._matching)) if self.dynamic else self._static

    def observation_namespaces(self) -> tuple[str, ...]:
        """Where GC, the budget and the report controller look: the watched namespaces and our
        own; () = the whole cluster (a static scope without a list)."""
        watched = self.watched()
        if not watched and not self.dynamic:
            return ()
        return tuple(dict.fromkeys((*watched, self._pod_namespace)))

    def admits(self, namespace: str) -> bool:
        """Whether a finding for `namespace` is ours to write (the webhooks' out-of-scope check)."""
        if self.dynamic:
            return namespace in self._matching
        return not self._static or namespace in self._static

    def subscribe(self, listener: ScopeListener) -> Callable[[], None]:
        """Hear changes from now on; answers the call that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def run(self, *, client: KubeClient, metrics: Metrics) -> NoReturn:
        """Forever: list and watch the Namespaces that match the selector."""
        while True:
            try:
                await informer.informer(
                    client=client,
                    path=NAMESPACES_PATH,
                    resource="namespaces",
                    handler=self,
                    metrics=metrics,
                    synced=self.synced,
                    label_selector=self.selector,
                )
            except informer.ResourceGone:  # pragma: no cover - namespaces are always served
                logger.error("namespaces_not_served")  # noqa: TRY400 - nothing more to say
                await asyncio.sleep(10.0)

    # The informer's handler: the server has filtered already, so every object here matches.

    async def on_object(self, obj: dict[str, Any]) -> None:
        self._enter(_name_of(obj))

    async def on_deleted(self, obj: dict[str, Any]) -> None:
        self._leave(_name_of(obj))

    async def on_listed(self, present: frozenset[tuple[str, str]]) -> None:
        # After a relist: what matched before and is not listed now stopped matching meanwhile.
        names = {name for _, name in present}
        for name in sorted(self._matching - names):
            self._leave(name)

    def _enter(self, namespace: str) -> None:
        if not namespace or namespace in self._matching:
            return
        self._matching.add(namespace)
        logger.info("namespace_entered_scope", namespace=namespace, selector=self.selector)
        for listener in list(self._listeners):
            listener.namespace_entered(namespace)

    def _leave(self, namespace: str) -> None:
        if namespace not in self._matching:
            return
        self._matching.discard(namespace)
        logger.info("namespace_left_scope", namespace=namespace, selector=self.selector)
        for listener in list(self._listeners):
            listener.namespace_left(namespace)


def _name_of(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")
