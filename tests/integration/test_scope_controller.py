"""The report controller under a selector's scope, on the real API server: namespaces entering
and leaving during a term. The scope is fed by hand (its Namespace informer is tested end to end
in tests/e2e/test_namespace_selector.py); one injected fault holds a namespace's report lists."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.harness import namespaces
from tests.harness import reports as fx
from tests.harness.controlplane import cluster
from tests.harness.hooked_client import HookedClient
from zenwatcher.filters.state import FilterState
from zenwatcher.kube.client import Params
from zenwatcher.leader.context import LeaderContext
from zenwatcher.leader.report_controller import ReportController
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.jobs import OpenJob, WriteJob
from zenwatcher.scope import NamespaceScope
from zenwatcher.settings import Settings

pytestmark = pytest.mark.apiserver


@pytest.fixture(name="pair")
def _pair(control_plane: cluster.Cluster) -> Iterator[tuple[str, str]]:
    names = (f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}")
    for name in names:
        control_plane.kubectl("create", "namespace", name)
    yield names
    for name in names:
        namespaces.remove(control_plane, name)


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


class Opens:
    """The Opens the controller queued so far, by namespace (the queue drained as it goes)."""

    def __init__(self, queue: asyncio.Queue[WriteJob]) -> None:
        self._queue = queue
        self._names: dict[str, set[str]] = {}

    def in_(self, namespace: str) -> set[str]:
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if isinstance(job, OpenJob):
                self._names.setdefault(job.namespace, set()).add(str(job.finding.name))
        return self._names.get(namespace, set())


async def test_namespaces_entering_and_leaving_during_a_term(
    spy_client: HookedClient, control_plane: cluster.Cluster, namespace: str, pair: tuple[str, str]
) -> None:
    """1. A and B are in scope; B's report lists are held (an injected fault) and B leaves
       while the first sync waits for them: the first sync completes all the same.
    2. A's report is opened; a report in B, out of scope, is not.
    3. B enters: its report is opened."""
    a, b = pair
    scope = NamespaceScope(pod_namespace=namespace, selector="x=y")
    for name in (a, b):
        await scope.on_object({"metadata": {"name": name}})
    scope.synced.set()
    held = asyncio.Event()

    async def hold_b_reports(method: str, path: str, params: Params | None, body: Any) -> None:
        if f"/namespaces/{b}/" in path and "observations" not in path:
            await held.wait()

    spy_client.before = hold_b_reports
    metrics = Metrics(CollectorRegistry())
    queue: asyncio.Queue[WriteJob] = asyncio.Queue()
    settings = Settings.from_env({"POD_NAMESPACE": namespace, "WATCH_NAMESPACE_SELECTOR": "x=y"})
    controller = ReportController(
        context=LeaderContext(
            client=spy_client,
            settings=settings,
            queue=queue,
            filters=FilterState(),
            accounting=Accounting(metrics),
            metrics=metrics,
            scope=scope,
        )
    )
    task = asyncio.create_task(controller.run())
    try:
        await until(
            lambda: any(
                f"/namespaces/{b}/" in path and "observations" not in path
                for _, path, _ in spy_client.calls
            )
        )
        assert not controller.synced()
        await scope.on_deleted({"metadata": {"name": b}})
        await until(controller.synced)

        reports = {name: fx.placed(fx.load_fixture(fx.VULNS), name) for name in (a, b)}
        fx.apply(control_plane, *reports.values())
        opens = Opens(queue)
        await until(lambda: opens.in_(a) == fx.finding_names(reports[a]))
        await asyncio.sleep(1.0)
        assert set() == opens.in_(b)

        held.set()
        await scope.on_object({"metadata": {"name": b}})
        await until(lambda: opens.in_(b) == fx.finding_names(reports[b]))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
