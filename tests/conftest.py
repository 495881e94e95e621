"""Test-session fixtures: one real control plane per session, a fresh namespace per test.

By default the session builds (once, cached) and starts etcd + kube-apiserver on loopback.
With ZEN_TEST_KUBECONFIG set, the same tests run against that cluster instead (e.g. kind);
tests that restart or compact the control plane need the local one and say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import structlog

from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess
from tests.harness.daemons import StartDaemon
from tests.harness.hooked_client import HookedClient
from tests.harness.paths import REPO_ROOT
from zenwatcher.kube import config as kube_config
from zenwatcher.kube.client import KubeClient
from zenwatcher.mapping.reports.kinds import REPORT_KINDS

Client = TypeVar("Client", bound=KubeClient)
REPORT_RESOURCES = (
    ",".join(f"{kind.plural}.{kind.group}" for kind in REPORT_KINDS if kind.namespaced)
    + ",observations.zen.kube-zen.io"
)


@pytest.fixture(name="control_plane", scope="session")
def _control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.Cluster]:
    """The running cluster with our CRDs, the upstream report CRDs and the shipped RBAC."""
    workdir = tmp_path_factory.mktemp("controlplane")
    with cluster.session_cluster(workdir) as running:
        yield running


@pytest.fixture(name="namespace")
def _namespace(control_plane: cluster.Cluster) -> Iterator[str]:
    """A namespace of this test's own, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    # No namespace controller runs on the local control plane, so a deleted namespace keeps
    # its objects: remove the reports and Observations explicitly, lest later tests' cluster-wide
    # informers pick them up.
    control_plane.kubectl(
        "delete", REPORT_RESOURCES, "--all", "-n", name, "--wait=false", check=False
    )
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@contextlib.asynccontextmanager
async def _client_as(
    control_plane: cluster.Cluster, user: str, client_type: type[Client]
) -> AsyncIterator[Client]:
    """Our own client (or a subclass), authenticated as `user`, closed afterwards."""
    connection = await kube_config.load_connection(str(control_plane.kubeconfig(user)))
    client = client_type(connection=connection, timeout=10.0)
    yield client
    await client.close()


@pytest.fixture(name="watcher_client")
async def _watcher_client(control_plane: cluster.Cluster) -> AsyncIterator[KubeClient]:
    """Our own client, authenticated as the restricted `zen-watcher` user."""
    async with _client_as(control_plane, "zen-watcher", KubeClient) as client:
        yield client


@pytest.fixture(name="spy_client")
async def _spy_client(control_plane: cluster.Cluster) -> AsyncIterator[HookedClient]:
    """The restricted `zen-watcher` user's client, with hooks for injected faults."""
    async with _client_as(control_plane, "zen-watcher", HookedClient) as client:
        yield client


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


@pytest.fixture(name="admin_client")
async def _admin_client(control_plane: cluster.Cluster) -> AsyncIterator[KubeClient]:
    """Our own client as the admin user, for setting up what a test needs."""
    async with _client_as(control_plane, "admin", KubeClient) as client:
        yield client


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Each test starts with structlog's default configuration."""
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
async def _no_leftover_tasks() -> AsyncIterator[None]:
    """A test must not leave asyncio tasks running behind it (kopf's habit)."""
    yield
    current = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    assert leftovers == [], f"tasks left running: {leftovers}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test that used the control plane shows the end of the server logs."""
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    plane = item.funcargs.get("control_plane") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(plane, cluster.Cluster):
        report.sections.append(("control plane logs", plane.log_tails()))
    return report


def manifests_dir() -> Path:
    return REPO_ROOT / "manifests"


os.environ.setdefault("ZEN_REPO_ROOT", str(REPO_ROOT))
