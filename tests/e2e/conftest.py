"""Fixtures that start zen-watcher processes against the session's cluster."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.controlplane import cluster
from tests.e2e.daemon_process import DaemonProcess

StartDaemon = Callable[..., DaemonProcess]


@pytest.fixture(name="start_daemon")
def _start_daemon(
    control_plane: cluster.Cluster, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StartDaemon]:
    """Start zen-watcher processes as the restricted user; all are stopped after the test.

    By default the daemon's own namespace (POD_NAMESPACE) is the test's namespace, so
    cluster-wide findings of one test never meet another's.
    """
    started: list[DaemonProcess] = []
    control_plane.grant_watcher_role(namespace)

    def start(*, wait_ready: bool = True, **env: str) -> DaemonProcess:
        settings = {"POD_NAMESPACE": namespace, "DEDUP_WINDOW_SECONDS": "60", **env}
        daemon = DaemonProcess(
            kubeconfig=control_plane.kubeconfig("zen-watcher"), workdir=tmp_path, env=settings
        )
        started.append(daemon)
        daemon.start(wait_ready=wait_ready)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
    if request.node.stash.get(_FAILED, False):
        for daemon in started:
            print(f"--- zen-watcher log {daemon.log_path} ---\n{daemon.logs()}")


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


def list_observations(control_plane: cluster.Cluster, namespace: str) -> list[dict[str, Any]]:
    """Observations in `namespace`, read as admin through kubectl."""
    result = control_plane.kubectl("get", "observations", "-n", namespace, "-o", "json")
    items: list[dict[str, Any]] = orjson.loads(result.stdout)["items"]
    return items
