"""Which report kinds the API server serves, and where: discovery and resource paths.

A report CRD may be installed after zen-watcher starts (trivy-operator often is), or removed
while it runs. `Discovery.run` re-reads the group-version documents every `interval` and
announces each wanted kind once when it becomes served; after its informer found the kind gone,
`forget(kind)` lets a later reinstall be announced again. The first pass of a leadership term
waits a while for a definite answer (served, or 404) for every group-version: taking a failed
call as "not served" there would let reconciliation resolve every Open finding of that kind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, NoReturn, Protocol, TypeVar

import structlog

from zenwatcher.kube import errors
from zenwatcher.kube.client import KubeClient
from zenwatcher.pacing import Backoff

logger = structlog.get_logger()

# How long the first pass of a term waits out failures of one group-version (an aggregated
# report API whose backend is down may never answer); after that its kinds wait for a later
# pass and the term resolves no orphans.
DEFINITE_WITHIN = 60.0


class ApiResource(Protocol):
    """What discovery needs of a resource kind (the report kinds are one such table)."""

    @property
    def group(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def plural(self) -> str: ...
    @property
    def namespaced(self) -> bool: ...
    @property
    def api_version(self) -> str: ...
    def __hash__(self) -> int: ...


Resource = TypeVar("Resource", bound=ApiResource)


def group_version_path(group: str, version: str) -> str:
    """`/api/v1` for the core group (""), else `/apis/{group}/{version}`."""
    return f"/api/{version}" if not group else f"/apis/{group}/{version}"


def resource_path(group: str, version: str, plural: str, namespace: str | None) -> str:
    """The collection path of `plural`, in `namespace` or across the cluster (None)."""
    base = group_version_path(group, version)
    if namespace is None:
        return f"{base}/{plural}"
    return f"{base}/namespaces/{namespace}/{plural}"


def kind_paths(kind: ApiResource, namespaces: Sequence[str]) -> tuple[str, ...]:
    """Paths to watch for `kind`: one per namespace, or cluster-wide when none are given.

    Cluster-scoped kinds always have exactly one path, whatever the namespaces.
    """
    if not kind.namespaced or not namespaces:
        return (resource_path(kind.group, kind.version, kind.plural, None),)
    return tuple(resource_path(kind.group, kind.version, kind.plural, ns) for ns in namespaces)


async def served_resources(client: KubeClient, group_version: str) -> frozenset[str] | None:
    """Plural names served under `group/version` ("v1" for core); None when it is not served."""
    group, _, version = group_version.rpartition("/")
    try:
        document = await client.request("GET", group_version_path(group, version))
    except errors.NotFound:
        return None
    resources = document.get("resources") or []
    # Subresources ("policyreports/status") are listed too; only collections matter here.
    return frozenset(
        str(entry["name"])
        for entry in resources
        if isinstance(entry, dict) and "/" not in str(entry.get("name", "/"))
    )


class Discovery(Generic[Resource]):
    """Announces each wanted kind once, when the API server starts serving it."""

    def __init__(
        self,
        *,
        client: KubeClient,
        wanted: Sequence[Resource],
        on_available: Callable[[Resource], Awaitable[None]],
        interval: float = 30.0,
        backoff_factory: Callable[[], Backoff] = Backoff,
        definite_within: float = DEFINITE_WITHIN,
    ) -> None:
        self._client = client
        self._wanted = tuple(wanted)
        self._on_available = on_available
        self._interval = interval
        self._backoff_factory = backoff_factory
        self._definite_within = definite_within
        self._announced: set[Resource] = set()

    async def run(self) -> NoReturn:
        """Check now, then every `interval` seconds, forever."""
        while True:
            await self.check()
            await asyncio.sleep(self._interval)

    async def check(self, *, definite: bool = False) -> frozenset[str]:
        """One pass: announce every wanted kind that is served and not yet announced; answer
        the group-versions whose discovery failed (their kinds count as not served for now).

        With `definite`, a retriable failure (429, 5xx, lost connection) is retried with
        backoff for up to DEFINITE_WITHIN seconds per group-version before it counts as failed.
        """
        failed: set[str] = set()
        for group_version in sorted({kind.api_version for kind in self._wanted}):
            pending = [
                kind
                for kind in self._wanted
                if kind.api_version == group_version and kind not in self._announced
            ]
            if not pending:
                continue
            served = await self._served(group_version, definite=definite)
            if served is None:
                failed.add(group_version)
                continue
            for kind in pending:
                if kind.plural in served:
                    self._announced.add(kind)
                    logger.info("resource_available", kind=kind.kind, api_version=group_version)
                    await self._on_available(kind)
        return frozenset(failed)

    def forget(self, kind: Resource) -> None:
        """Announce `kind` again the next time it is served (its informer found it gone)."""
        self._announced.discard(kind)

    async def _served(self, group_version: str, *, definite: bool) -> frozenset[str] | None:
        """The plurals served (empty when the group-version is not: 404); None when discovery
        failed."""
        backoff = self._backoff_factory()
        give_up_at = time.monotonic() + (self._definite_within if definite else 0.0)
        while True:
            try:
                return await served_resources(self._client, group_version) or frozenset()
            except (errors.ApiError, errors.TransportError) as error:
                hint = errors.retry_hint(error)
                delay = backoff.next_delay(hint=hint)
                retry = errors.is_retriable(error) and time.monotonic() + delay < give_up_at
                logger.warning(
                    "discovery_failed",
                    api_version=group_version,
                    error=str(error),
                    retry_in=delay if retry else None,
                )
                if not retry:  # tried again on the next pass; nothing is announced meanwhile
                    return None
                await asyncio.sleep(delay)
