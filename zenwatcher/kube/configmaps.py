"""ConfigMap paths: the collection of one namespace narrowed to a single ConfigMap by name."""

from __future__ import annotations

from urllib.parse import quote

from zenwatcher.kube.discovery import resource_path


def named_collection_path(namespace: str, name: str) -> str:
    """The ConfigMaps of `namespace` with a field selector on `name`: list-and-watch of one
    object that RBAC can grant by resourceName."""
    selector = quote(f"metadata.name={name}", safe="")
    return f"{resource_path('', 'v1', 'configmaps', namespace)}?fieldSelector={selector}"
