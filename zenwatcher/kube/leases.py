"""coordination.k8s.io/v1 Lease calls for leader election: read, create, replace.

A replace sends the resourceVersion it read, so a writer working from a stale copy gets 409
Conflict instead of overwriting another holder (client-go's LeaseLock.Update). Every call
carries an explicit timeout, so one hung request cannot outlast the caller's deadline.
"""

from __future__ import annotations

from typing import Any

from zenwatcher.kube.client import KubeClient

_BASE = "/apis/coordination.k8s.io/v1"
DEFAULT_TIMEOUT = 5.0


def collection_path(namespace: str) -> str:
    return f"{_BASE}/namespaces/{namespace}/leases"


def object_path(namespace: str, name: str) -> str:
    return f"{collection_path(namespace)}/{name}"


async def get_lease(
    client: KubeClient, namespace: str, name: str, *, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Any]:
    """GET the Lease; raises NotFound when there is none yet."""
    return await client.request("GET", object_path(namespace, name), timeout=timeout)


async def create_lease(
    client: KubeClient, body: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Any]:
    """POST the Lease; raises Conflict (AlreadyExists) when another candidate created it first."""
    namespace = body["metadata"]["namespace"]
    return await client.request("POST", collection_path(namespace), body=body, timeout=timeout)


async def replace_lease(
    client: KubeClient, body: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Any]:
    """PUT the Lease as read and changed; raises Conflict when it changed since it was read.

    `body.metadata.resourceVersion` is required: an unconditional replace could silently take
    the Lease from a holder that renewed in between.
    """
    metadata = body["metadata"]
    if not metadata.get("resourceVersion"):
        raise ValueError(f"replace_lease needs metadata.resourceVersion: {metadata!r}")
    path = object_path(metadata["namespace"], metadata["name"])
    return await client.request("PUT", path, body=body, timeout=timeout)
