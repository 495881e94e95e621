"""The findings that exist now, as gauges: the leader watches the Observations' metadata.

`zen_watcher_findings{source, severity, namespace, phase}` counts the Observations in scope,
whoever wrote them (webhook findings land on any replica), from a metadata-only list and watch
(PartialObjectMetadata: labels, no spec or status), so it is right after a restart or a failover
and costs a few hundred bytes per Observation. Source, severity and phase come from the labels
(`observation.phase_label_of`); event findings stay open until GC deletes them. The family is
set once every informer of the term has listed and emptied when the term ends, so followers
export nothing and a sum over pods counts each Observation once. With WATCH_NAMESPACE_SELECTOR
the informers follow the scope: a namespace entering is watched and counted, one leaving is no
longer watched and its series leave the family.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import structlog

from zenwatcher.informers.informer import ObjectKey, ResourceGone, informer, object_key
from zenwatcher.kube import observations
from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics
from zenwatcher.metrics.findings import CurrentKey
from zenwatcher.observation import LABEL_SEVERITY, LABEL_SOURCE, phase_label_of
from zenwatcher.scope import NamespaceScope

logger = structlog.get_logger()

# Metadata only: the API server sends PartialObjectMetadata(List) instead of whole objects.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
RESOURCE = "observations"
RETRY_GONE_SECONDS = 30.0  # the Observation CRD removed: look again this often


def current_key(obj: Mapping[str, Any]) -> CurrentKey:
    """The gauge's label values for one Observation (its metadata is enough)."""
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    labels = metadata.get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    return (
        str(labels.get(LABEL_SOURCE) or "unknown"),
        str(labels.get(LABEL_SEVERITY) or "unknown"),
        str(metadata.get("namespace") or ""),
        phase_label_of(labels).value,
    )


class Tally:
    """Counts by gauge key, shared by the informers of one term."""

    def __init__(self) -> None:
        self.counts: Counter[CurrentKey] = Counter()
        # One tuple per distinct key, held by every object with it: at 50,000 Observations a
        # tuple of four fresh strings each would be most of the memory.
        self._keys: dict[CurrentKey, CurrentKey] = {}

    def shared(self, key: CurrentKey) -> CurrentKey:
        return self._keys.setdefault(key, key)

    def scope(self) -> ScopeHandler:
        return ScopeHandler(self)

    def drop(self, namespace: str) -> None:
        """Forget `namespace`'s series (its informer has stopped: it left the scope)."""
        for key in [key for key in self._keys if key[2] == namespace]:
            del self._keys[key]
            self.counts.pop(key, None)


class ScopeHandler:
    """One informer's objects (one namespace, or the cluster): the key each counts under."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally
        self._keys: dict[ObjectKey, CurrentKey] = {}

    async def on_object(self, obj: dict[str, Any]) -> None:
        namespace, name_only = object_key(obj)
        name, key = (sys.intern(namespace), name_only), self._tally.shared(current_key(obj))
        previous = self._keys.get(name)
        if previous == key:
            return
        if previous is not None:
            self._tally.counts[previous] -= 1
        self._keys[name] = key
        self._tally.counts[key] += 1

    async def on_deleted(self, obj: dict[str, Any]) -> None:
        previous = self._keys.pop(object_key(obj), None)
        if previous is not None:
            self._tally.counts[previous] -= 1

    async def on_listed(self, present: frozenset[ObjectKey]) -> None:
        for name in [name for name in self._keys if name not in present]:
            self._tally.counts[self._keys.pop(name)] -= 1


async def findings_gauge(
    *,
    client: KubeClient,
    namespaces: tuple[str, ...],
    metrics: Metrics,
    scope: NamespaceScope | None = None,
    page_size: int = 500,
) -> None:
    """Watch the Observations of `namespaces` (empty = the cluster) until cancelled, exposing
    their counts once every informer has listed; the gauge is emptied when this ends. A dynamic
    `scope` (a selector) replaces `namespaces` with its Observation namespaces of the moment."""
    tally = Tally()
    unsubscribe: Callable[[], None] | None = None
    try:
        async with asyncio.TaskGroup() as group:
            watches = _Watches(
                client=client, metrics=metrics, tally=tally, group=group, page_size=page_size
            )
            if scope is not None and scope.dynamic:
                await scope.synced.wait()
                # The set and the changes after it, with no await between: none is missed.
                unsubscribe = scope.subscribe(watches)
                namespaces = scope.observation_namespaces()
                group.create_task(watches.follow(scope), name="findings-gauge scope")
            synced = [watches.start(namespace) for namespace in namespaces or ("",)]
            for event in synced:
                await event.wait()
            metrics.findings_current.set(tally.counts)
            logger.info("findings_gauge_synced", observations=sum(tally.counts.values()))
    finally:
        if unsubscribe is not None:
            unsubscribe()
        metrics.findings_current.clear()


class _Watches:
    """The term's informers by namespace ("" = the cluster), counting into one tally; with a
    dynamic scope, started and stopped as namespaces enter and leave it. As a ScopeListener it
    only queues the changes: `follow`, a task of the term, applies them, so the scope's
    informer never starts a task in a term that is ending."""

    def __init__(
        self,
        *,
        client: KubeClient,
        metrics: Metrics,
        tally: Tally,
        group: asyncio.TaskGroup,
        page_size: int,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._tally = tally
        self._group = group
        self._page_size = page_size
        self._running: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._changes: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()

    def start(self, namespace: str) -> asyncio.Event:
        """Watch `namespace` unless it is watched; answers the event set once it has listed."""
        if namespace in self._running:
            return self._running[namespace][1]
        path = observations.collection_path(namespace or None)
        synced = asyncio.Event()
        task = self._group.create_task(
            _watch(
                self._client,
                path,
                handler=self._tally.scope(),
                metrics=self._metrics,
                synced=synced,
                page_size=self._page_size,
            ),
            name=f"findings-gauge {path}",
        )
        self._running[namespace] = (task, synced)
        return synced

    def namespace_entered(self, namespace: str) -> None:
        self._changes.put_nowait((namespace, True))

    def namespace_left(self, namespace: str) -> None:
        self._changes.put_nowait((namespace, False))

    async def follow(self, scope: NamespaceScope) -> NoReturn:
        """Apply the scope's changes in order, until cancelled."""
        while True:
            namespace, entered = await self._changes.get()
            if entered:
                self.start(namespace)
            # Not if it is back, or is POD_NAMESPACE (findings without a namespace live there).
            elif namespace not in scope.observation_namespaces():
                self._stop(namespace)

    def _stop(self, namespace: str) -> None:
        """Stop watching `namespace` and drop its series."""
        running = self._running.pop(namespace, None)
        if running is None:
            return
        task, synced = running
        task.cancel()
        synced.set()  # so nothing waits on a cancelled informer
        self._tally.drop(namespace)


async def _watch(
    client: KubeClient,
    path: str,
    *,
    handler: ScopeHandler,
    metrics: Metrics,
    synced: asyncio.Event,
    page_size: int,
) -> None:
    while True:
        try:
            await informer(
                client=client,
                path=path,
                resource=RESOURCE,
                handler=handler,
                metrics=metrics,
                page_size=page_size,
                synced=synced,
                list_accept=METADATA_LIST,
                watch_accept=METADATA_WATCH,
            )
        except ResourceGone:
            # The Observation CRD is missing: nothing to count, and nothing for the term
            # to stop over; look again later.
            await handler.on_listed(frozenset())
            synced.set()
            await asyncio.sleep(RETRY_GONE_SECONDS)
