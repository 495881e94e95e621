"""Audit Events and Pods built by hand, and what the audit mapper makes of an Event."""

from __future__ import annotations

from typing import Any

from zenwatcher.mapping import audit, rejection


def event(
    *,
    verb: str = "create",
    resource: str = "pods",
    namespace: str | None = "default",
    name: str | None = "web",
    subresource: str | None = None,
    api_group: str | None = None,
    stage: str = "ResponseComplete",
    code: int | None = 201,
    user: str = "alice",
    groups: list[str] | None = None,
    request_object: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """A hand-built audit.k8s.io/v1 Event; None leaves a field out."""
    ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
    for key, value in (
        ("namespace", namespace),
        ("name", name),
        ("subresource", subresource),
        ("apiGroup", api_group),
    ):
        if value is not None:
            ref[key] = value
    built: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": "11111111-2222-3333-4444-555555555555",
        "stage": stage,
        "requestURI": f"/api/v1/namespaces/{namespace}/{resource}",
        "verb": verb,
        "user": {"username": user, "groups": groups or ["system:authenticated"]},
        "sourceIPs": ["10.0.0.1"],
        "userAgent": "kubectl/v1.31.0",
        "objectRef": ref,
        "requestReceivedTimestamp": "2024-01-02T03:04:05.000001Z",
        "stageTimestamp": "2024-01-02T03:04:05.500000Z",
    }
    if code is not None:
        built["responseStatus"] = {"metadata": {}, "code": code}
    if request_object is not None:
        built["requestObject"] = request_object
    built.update(extra)
    return built


def pod(**spec: Any) -> dict[str, Any]:
    """A Pod object with one plain container and the given spec fields."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "app", "image": "nginx"}], **spec},
    }


def outcome(evt: object, **kwargs: Any) -> str:
    """The finding's eventType, or "Ignored:reason" / "Rejected:reason"."""
    try:
        return audit.map_audit_event(evt, **kwargs).event_type
    except rejection.Ignored as ignored:
        return f"Ignored:{ignored.reason}"
    except rejection.Rejected as rejected:
        return f"Rejected:{rejected.reason}"
