"""Helpers for tests that start zen-watcher processes (the `start_daemon` fixture's type)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess

StartDaemon = Callable[..., DaemonProcess]


def list_observations(control_plane: cluster.Cluster, namespace: str) -> list[dict[str, Any]]:
    """Observations in `namespace`, read as admin through kubectl."""
    result = control_plane.kubectl("get", "observations", "-n", namespace, "-o", "json")
    items: list[dict[str, Any]] = orjson.loads(result.stdout)["items"]
    return items
