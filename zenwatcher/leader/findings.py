"""The findings that exist now, as gauges: the leader watches the Observations' metadata.

`zen_watcher_findings{source, severity, namespace, phase}` counts the Observations in scope,
whoever wrote them (webhook findings land on any replica), from a metadata-only list and watch
(PartialObjectMetadata: labels, no spec or status), so it is right after a restart or a failover
and costs a few hundred bytes per Observation. Source, severity and phase come from the labels
(`observation.phase_label_of`); event findings stay open until GC deletes them. The family is
set once every informer of the term has listed and emptied when the term ends, so followers
export nothing and a sum over pods counts each Observation once.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Mapping
from typing import Any

import structlog

from zenwatcher.informers.informer import ObjectKey, ResourceGone, informer, object_key
from zenwatcher.kube import observations
from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics
from zenwatcher.metrics.findings import CurrentKey
from zenwatcher.observation import LABEL_SEVERITY, LABEL_SOURCE, phase_label_of

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
    page_size: int = 500,
) -> None:
    """Watch the Observations of `namespaces` (empty = the cluster) until cancelled, exposing
    their counts once every informer has listed; the gauge is emptied when this ends."""
    tally = Tally()
    paths = [observations.collection_path(ns) for ns in namespaces] or [
        observations.collection_path(None)
    ]
    synced = [asyncio.Event() for _ in paths]
    try:
        async with asyncio.TaskGroup() as group:
            for path, event in zip(paths, synced, strict=True):
                group.create_task(
                    _watch(
                        client,
                        path,
                        handler=tally.scope(),
                        metrics=metrics,
                        synced=event,
                        page_size=page_size,
                    ),
                    name=f"findings-gauge {path}",
                )
            for event in synced:
                await event.wait()
            metrics.findings_current.set(tally.counts)
            logger.info("findings_gauge_synced", observations=sum(tally.counts.values()))
    finally:
        metrics.findings_current.clear()


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
