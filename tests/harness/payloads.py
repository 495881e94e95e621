"""The shared Falco and audit fixtures as payloads to send (JSON files or JSON lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.harness.paths import SHARED_FIXTURES


def json_objects(path: Path) -> list[Any]:
    """A file's JSON value, or one value per line for JSON-lines files."""
    raw = path.read_bytes()
    try:
        return [orjson.loads(raw)]
    except orjson.JSONDecodeError:
        return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


def falco_alerts() -> list[tuple[str, dict[str, Any]]]:
    """(file name, alert) for every Falco fixture."""
    alerts: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((SHARED_FIXTURES / "falco").glob("*.json")):
        alerts.extend((path.name, alert) for alert in json_objects(path))
    return alerts


def audit_events(*, include_malformed: bool = False) -> list[dict[str, Any]]:
    """Every audit Event of the fixtures (the deliberately malformed file only on request)."""
    events = []
    for path in sorted((SHARED_FIXTURES / "audit").glob("*.json")):
        for value in json_objects(path):
            if include_malformed or value.get("kind") == "Event":
                events.append(value)
    return events


def event_list(events: list[dict[str, Any]], *, api_version: str = "audit.k8s.io/v1") -> bytes:
    """An audit EventList as the API server's webhook backend posts it."""
    return orjson.dumps(
        {"kind": "EventList", "apiVersion": api_version, "metadata": {}, "items": events}
    )


def unique_alert(index: int, namespace: str) -> dict[str, Any]:
    """A Falco alert whose identity (pod name) differs by `index`."""
    return {
        "output": f"shell in pod-{index}",
        "priority": "Warning",
        "rule": "Terminal shell in container",
        "time": "2026-01-01T00:00:00.000000000Z",
        "output_fields": {
            "k8s.ns.name": namespace,
            "k8s.pod.name": f"pod-{index}",
            "container.id": "c1",
        },
    }
