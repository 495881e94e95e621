"""Observation API calls: create, read, status updates, paginated lists, delete.

Creates carry the whole object, status included: the CRD has no status subresource, so a new
Observation is one call. Status updates are merge patches of the object that send the
resourceVersion they read, so two replicas incrementing one count never lose an increment
(409 = re-read).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from zenwatcher.kube.client import MERGE_PATCH, KubeClient
from zenwatcher.observation import GROUP, PLURAL, VERSION

_BASE = f"/apis/{GROUP}/{VERSION}"


def collection_path(namespace: str | None) -> str:
    """The Observation collection in `namespace`, or across all namespaces for None."""
    if namespace is None:
        return f"{_BASE}/{PLURAL}"
    return f"{_BASE}/namespaces/{namespace}/{PLURAL}"


def object_path(namespace: str, name: str) -> str:
    return f"{collection_path(namespace)}/{name}"


async def create_observation(client: KubeClient, body: dict[str, Any]) -> dict[str, Any]:
    """POST the Observation; raises Conflict (AlreadyExists) when the name is taken."""
    namespace = body["metadata"]["namespace"]
    return await client.request("POST", collection_path(namespace), body=body)


async def get_observation(client: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    return await client.request("GET", object_path(namespace, name))


async def patch_status(
    client: KubeClient,
    namespace: str,
    name: str,
    *,
    status: dict[str, Any],
    resource_version: str | None = None,
    annotations: dict[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Merge-patch `.status` (of the object itself: there is no status subresource) and, in the
    same write, `labels` and `annotations` into metadata; with `resource_version` the server
    refuses a stale write (409)."""
    body: dict[str, Any] = {"status": status}
    metadata: dict[str, Any] = {}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    if annotations:
        metadata["annotations"] = annotations
    if labels:
        metadata["labels"] = dict(labels)
    if metadata:
        body["metadata"] = metadata
    return await client.request(
        "PATCH", object_path(namespace, name), body=body, content_type=MERGE_PATCH
    )


async def delete_observation(
    client: KubeClient, namespace: str, name: str, *, resource_version: str | None = None
) -> None:
    """DELETE, optionally only if unchanged since it was read (GC must not race an update)."""
    body = None
    if resource_version is not None:
        body = {"preconditions": {"resourceVersion": resource_version}}
    await client.request("DELETE", object_path(namespace, name), body=body)


async def list_observations(
    client: KubeClient,
    *,
    namespace: str | None,
    label_selector: str = "",
    page_size: int = 500,
) -> AsyncIterator[dict[str, Any]]:
    """Every Observation in scope, one page of `page_size` at a time (limit/continue)."""
    token = ""
    while True:
        params: dict[str, str | int | bool] = {"limit": page_size}
        if label_selector:
            params["labelSelector"] = label_selector
        if token:
            params["continue"] = token
        page = await client.request("GET", collection_path(namespace), params=params)
        for item in page.get("items") or []:
            yield item
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return


async def count_observations(client: KubeClient, *, namespace: str | None) -> int:
    """How many Observations `namespace` (None: the cluster) holds, from a one-item list: the
    API server tells how many remain after it."""
    page = await client.request("GET", collection_path(namespace), params={"limit": "1"})
    items = page.get("items") or []
    remaining = (page.get("metadata") or {}).get("remainingItemCount") or 0
    return len(items) + int(remaining)
