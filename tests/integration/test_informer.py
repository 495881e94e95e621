"""Informers, watch streams and discovery against the real kube-apiserver (client-go semantics).

ConfigMaps in the test's namespace stand in for reports because they are cheap to create; one
test watches real PolicyReports. The faults are real: the API server is restarted and etcd is
compacted, and a loopback TCP relay (`Relay`) cuts the informer off while changes happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.harness.controlplane import cluster
from tests.harness.paths import SHARED_FIXTURES
from zenwatcher.informers import informer
from zenwatcher.kube import config as kube_config
from zenwatcher.kube import discovery, errors, watching
from zenwatcher.kube.client import KubeClient
from zenwatcher.mapping.reports.kinds import POLICY_GROUP, REPORT_KINDS, ReportKind
from zenwatcher.metrics import Metrics
from zenwatcher.pacing import Backoff

pytestmark = pytest.mark.apiserver

RESOURCE = "configmaps"
# Fast retries keep the fault tests short; the schedule's shape is what is under test.
FAST_BACKOFF = functools.partial(Backoff, base=0.05, cap=0.5)
Key = tuple[str, str]


@pytest.fixture(name="metrics")
def _metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture(name="relay")
async def _relay(control_plane: cluster.Cluster) -> AsyncIterator[Relay]:
    """A relay to the local API server; a fault injector, not a fake of our code."""
    relay = Relay(control_plane.require_local().port)
    await relay.start()
    yield relay
    await relay.close()


@pytest.fixture(name="relayed_client")
async def _relayed_client(
    control_plane: cluster.Cluster, relay: Relay
) -> AsyncIterator[KubeClient]:
    """An admin client whose every connection goes through `relay`."""
    connection = await kube_config.load_connection(str(control_plane.kubeconfig("admin")))
    relayed = dataclasses.replace(connection, base_url=f"https://127.0.0.1:{relay.port}")
    client = KubeClient(connection=relayed, timeout=10.0)
    yield client
    await client.close()


@pytest.fixture(name="widget_group")
def _widget_group(control_plane: cluster.Cluster) -> Iterator[str]:
    """A fresh API group for a throwaway Widget CRD, whose CRD is deleted afterwards."""
    group = f"t{uuid.uuid4().hex[:8]}.zen.test"
    yield group
    control_plane.kubectl("delete", "crd", f"widgets.{group}", "--ignore-not-found", check=False)


class Relay:
    """A loopback TCP relay that a test can cut: open connections drop, new ones are refused."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._links: dict[asyncio.Task[Any], list[asyncio.StreamWriter]] = {}
        self.port = 0
        self.open = True

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        self.open = False
        for writers in self._links.values():
            for writer in writers:
                writer.transport.abort()
        if self._links:
            await asyncio.wait(list(self._links))

    def restore(self) -> None:
        self.open = True

    async def close(self) -> None:
        await self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links[task] = writers = [writer]
        try:
            if not self.open:
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self._target_port
            )
            writers.append(upstream_writer)
            await asyncio.gather(
                _pump(reader, upstream_writer, writers), _pump(upstream_reader, writer, writers)
            )
        except OSError:
            pass
        finally:
            for each in writers:
                each.transport.abort()
            del self._links[task]


async def _pump(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, writers: list[asyncio.StreamWriter]
) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    # One side ended: end the other too, as a real connection would.
    for writer in writers:
        writer.transport.abort()


class Recorder:
    """An InformerHandler that keeps what a reconciler would know, and every call it got."""

    def __init__(self) -> None:
        self.known: dict[Key, str] = {}
        self.calls: list[tuple[str, Key]] = []
        self.lists: list[tuple[frozenset[Key], frozenset[Key]]] = []  # (present, missing)

    async def on_object(self, obj: dict[str, Any]) -> None:
        key = informer.object_key(obj)
        self.known[key] = obj["metadata"]["resourceVersion"]
        self.calls.append(("object", key))

    async def on_deleted(self, obj: dict[str, Any]) -> None:
        key = informer.object_key(obj)
        self.known.pop(key, None)
        self.calls.append(("deleted", key))

    async def on_listed(self, present: frozenset[Key]) -> None:
        missing = frozenset(self.known) - present
        for key in missing:
            del self.known[key]
        self.lists.append((present, missing))
        self.calls.append(("listed", ("", "")))

    def names(self) -> set[str]:
        return {name for _, name in self.known}

    def count(self, kind: str, name: str) -> int:
        return sum(1 for call, (_, each) in self.calls if call == kind and each == name)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"zen_watcher_{name}_total", labels) or 0.0


async def eventually(
    predicate: Callable[[], bool], *, task: asyncio.Task[Any] | None = None, timeout: float = 20.0
) -> None:
    """Wait until `predicate()` holds; fail at once if the informer task died."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if task is not None and task.done():
            raise AssertionError(f"informer ended: {task.exception()!r}")
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_task(coro: Coroutine[Any, Any, Any]) -> AsyncIterator[asyncio.Task[Any]]:
    """`coro` as a task for the body, cancelled and awaited afterwards."""
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@contextlib.asynccontextmanager
async def running_informer(
    client: KubeClient, path: str, handler: Recorder, metrics: Metrics, **options: Any
) -> AsyncIterator[asyncio.Task[Any]]:
    """The informer as a task, synced (first list delivered) before the body runs."""
    synced = asyncio.Event()
    options.setdefault("backoff_factory", FAST_BACKOFF)
    options.setdefault("resource", RESOURCE)
    coro = informer.informer(
        client=client, path=path, handler=handler, metrics=metrics, synced=synced, **options
    )
    async with running_task(coro) as task:
        await eventually(synced.is_set, task=task)
        yield task


async def until_served(client: KubeClient, path: str, timeout: float = 20.0) -> None:
    """Wait until a fresh CRD's collection lists (404, then 429 while its storage starts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.request("GET", path)
        except errors.ApiError as error:
            if not isinstance(error, errors.NotFound) and not error.retriable:
                raise
            assert time.monotonic() < deadline, f"{path} not served in time"
            await asyncio.sleep(0.1)
        else:
            return


async def kubectl(plane: cluster.Cluster, *args: str, stdin: str | None = None) -> None:
    """kubectl off the event loop, so the informer keeps running meanwhile."""
    await asyncio.to_thread(plane.kubectl, *args, stdin=stdin)


def configmaps(namespace: str, *names: str) -> str:
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "namespace": namespace}}
        for n in names
    ]
    return yaml.safe_dump_all(docs)


def cm_path(namespace: str) -> str:
    return discovery.resource_path("", "v1", "configmaps", namespace)


class TestWatching:
    async def test_list_pages_follow_continue_tokens(
        self, admin_client: KubeClient, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """25 objects with limit 10 come as pages of 10, 10 and 5 from one snapshot."""
        names = [f"cm-{i:02d}" for i in range(25)]
        await kubectl(control_plane, "apply", "-f", "-", stdin=configmaps(namespace, *names))

        pages = [
            page
            async for page in watching.list_pages(
                admin_client, path=cm_path(namespace), page_size=10
            )
        ]

        assert [10, 10, 5] == [len(page.items) for page in pages]
        assert 1 == len({page.resource_version for page in pages})
        assert names == sorted(item["metadata"]["name"] for page in pages for item in page.items)

    async def test_bookmark_moves_past_changes_we_do_not_see(
        self, admin_client: KubeClient, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """A change elsewhere is filtered out, but a bookmark carries its newer resourceVersion."""
        listed = [p async for p in watching.list_pages(admin_client, path=cm_path(namespace))]
        other = f"zen-bookmark-{uuid.uuid4().hex[:8]}"

        async def change_elsewhere() -> None:
            await asyncio.sleep(0.3)
            await kubectl(control_plane, "create", "configmap", other, "-n", "default")

        changing = asyncio.create_task(change_elsewhere())
        try:
            # The server sends a bookmark 2 s before the end of the watch it was asked for,
            # when its resourceVersion moved on since the watch started.
            events = [
                event
                async for event in watching.watch_stream(
                    admin_client,
                    path=cm_path(namespace),
                    resource_version=listed[0].resource_version,
                    server_timeout=3,
                    inactivity_timeout=10,
                )
            ]
        finally:
            await changing
            await kubectl(control_plane, "delete", "configmap", other, "-n", "default")

        assert {"BOOKMARK"} == {event.type for event in events}
        assert int(events[-1].resource_version) > int(listed[0].resource_version)

    async def test_silent_stream_is_idle(self, admin_client: KubeClient, namespace: str) -> None:
        """No line at all for the inactivity timeout raises StreamIdle, well before the server's."""
        listed = [p async for p in watching.list_pages(admin_client, path=cm_path(namespace))]
        started = time.monotonic()
        with pytest.raises(watching.StreamIdle):
            async for _ in watching.watch_stream(
                admin_client,
                path=cm_path(namespace),
                resource_version=listed[0].resource_version,
                server_timeout=30,
                inactivity_timeout=0.5,
            ):
                pass
        assert time.monotonic() - started < 10


class TestInformer:
    async def test_lists_then_watches(
        self,
        admin_client: KubeClient,
        control_plane: cluster.Cluster,
        namespace: str,
        metrics: Metrics,
    ) -> None:
        """Existing objects, then on_listed, then a create, an update and a delete, in order."""
        await kubectl(control_plane, "apply", "-f", "-", stdin=configmaps(namespace, "a", "b"))
        recorder = Recorder()
        async with running_informer(admin_client, cm_path(namespace), recorder, metrics) as task:
            assert [
                (frozenset({(namespace, "a"), (namespace, "b")}), frozenset())
            ] == recorder.lists
            assert ("listed", ("", "")) == recorder.calls[-1]
            await kubectl(control_plane, "create", "configmap", "c", "-n", namespace)
            await kubectl(control_plane, "label", "configmap", "a", "x=y", "-n", namespace)
            await kubectl(control_plane, "delete", "configmap", "b", "-n", namespace)
            await eventually(lambda: recorder.names() == {"a", "c"}, task=task)

        assert [
            ("object", (namespace, "c")),
            ("object", (namespace, "a")),
            ("deleted", (namespace, "b")),
        ] == (recorder.calls[3:])
        assert 1 == sample(metrics, "relists", resource=RESOURCE, reason="initial")

    async def test_paginated_list_delivers_every_object_once(
        self,
        admin_client: KubeClient,
        control_plane: cluster.Cluster,
        namespace: str,
        metrics: Metrics,
    ) -> None:
        """25 objects listed 10 at a time: each delivered once, all in the present set."""
        names = {f"cm-{i:02d}" for i in range(25)}
        await kubectl(control_plane, "apply", "-f", "-", stdin=configmaps(namespace, *names))
        recorder = Recorder()
        async with running_informer(
            admin_client, cm_path(namespace), recorder, metrics, page_size=10
        ):
            pass

        assert names == {name for call, (_, name) in recorder.calls if call == "object"}
        assert 25 == sum(1 for call, _ in recorder.calls if call == "object")
        assert {(namespace, name) for name in names} == recorder.lists[0][0]

    async def test_end_of_stream_rewatches_without_relisting(
        self,
        admin_client: KubeClient,
        control_plane: cluster.Cluster,
        namespace: str,
        metrics: Metrics,
    ) -> None:
        """When the server ends a watch, the next one resumes from the last resourceVersion."""
        await kubectl(control_plane, "create", "configmap", "a", "-n", namespace)
        recorder = Recorder()
        async with running_informer(
            admin_client, cm_path(namespace), recorder, metrics, server_timeout_range=(2, 2)
        ) as task:
            ended = functools.partial(sample, metrics, "watch_restarts", resource=RESOURCE)
            await eventually(lambda: ended(reason="normal_end") >= 2, task=task)
            await kubectl(control_plane, "create", "configmap", "b", "-n", namespace)
            await eventually(lambda: "b" in recorder.names(), task=task)

        assert 1 == recorder.count("object", "a")
        assert 1 == recorder.count("object", "b")
        assert 1 == len(recorder.lists)
        assert 0 == ended(reason="error") + ended(reason="gone")

    async def test_idle_stream_rewatches(
        self,
        admin_client: KubeClient,
        control_plane: cluster.Cluster,
        namespace: str,
        metrics: Metrics,
    ) -> None:
        """A stream silent for the inactivity timeout is replaced at once, without a relist."""
        recorder = Recorder()
        async with running_informer(
            admin_client, cm_path(namespace), recorder, metrics, inactivity_timeout=0.3
        ) as task:
            idle = functools.partial(sample, metrics, "watch_restarts", resource=RESOURCE)
            await eventually(lambda: idle(reason="timeout") >= 2, task=task)
            await kubectl(control_plane, "create", "configmap", "a", "-n", namespace)
            await eventually(lambda: "a" in recorder.names(), task=task)

        assert 1 == len(recorder.lists)
        assert 1 == recorder.count("object", "a")

    async def test_disconnect_resumes_from_the_last_version(
        self,
        relayed_client: KubeClient,
        relay: Relay,
        control_plane: cluster.Cluster,
        namespace: str,
        metrics: Metrics,
    ) -> None:
        """Changes made while the informer was cut off arrive as watch events; no relist.

        1. The informer lists a and b through the relay.
        2. The relay drops every connection; a is deleted and c created meanwhile.
        3. The relay lets connections through again.
        Result: c arrives as an event, a as a deletion, and only the initial list happened.
        """
        await kubectl(control_plane, "apply", "-f", "-", stdin=configmaps(namespace, "a", "b"))
        recorder = Recorder()
        async with running_informer(relayed_client, cm_path(namespace), recorder, metrics) as task:
            await relay.cut()
            await kubectl(control_plane, "delete", "configmap", "a", "-n", namespace)
            await kubectl(control_plane, "create", "configmap", "c", "-n", namespace)
            await asyncio.sleep(0.3)  # a few refused reconnects
            relay.restore()
            await eventually(lambda: recorder.names() == {"b", "c"}, task=task)

        assert [("deleted", (namespace, "a")), ("object", (namespace, "c"))] == recorder.calls[3:]
        assert 1 == len(recorder.lists)
        assert 0 == sample(metrics, "relists", resource=RESOURCE, reason="gone")
        assert 1 <= sample(metrics, "watch_restarts", resource=RESOURCE, reason="error")

    async def test_expired_version_relists_and_reports_what_vanished(
        self,
        relayed_client: KubeClient,
        relay: Relay,
        control_plane: cluster.Cluster,
        namespace: str,
        metrics: Metrics,
    ) -> None:
        """410 Gone on resume: relist, and on_listed shows what was deleted while away.

        1. The informer lists a and b through the relay, then the relay cuts it off.
        2. a is deleted and c created; etcd is compacted and the API server restarted, so the
           informer's resourceVersion is older than anything the server can replay.
        3. The relay lets connections through again; the watch answers 410.
        Result: one relist (reason gone) delivers b and c; a is missing from its present set
        (never an on_deleted, the informer never saw it go); nothing else is delivered twice.
        """
        await kubectl(control_plane, "apply", "-f", "-", stdin=configmaps(namespace, "a", "b"))
        plane = control_plane.require_local()
        recorder = Recorder()
        async with running_informer(relayed_client, cm_path(namespace), recorder, metrics) as task:
            await relay.cut()
            await kubectl(control_plane, "delete", "configmap", "a", "-n", namespace)
            await kubectl(control_plane, "create", "configmap", "c", "-n", namespace)
            await asyncio.to_thread(plane.compact_etcd)
            await asyncio.to_thread(plane.restart_apiserver)
            relay.restore()
            gone = functools.partial(sample, metrics, "relists", resource=RESOURCE, reason="gone")
            await eventually(lambda: gone() >= 1, task=task)

        assert {"b", "c"} == recorder.names()
        assert 1 == gone()
        assert (frozenset({(namespace, "b"), (namespace, "c")}), frozenset({(namespace, "a")})) == (
            recorder.lists[-1]
        )
        assert 0 == recorder.count("deleted", "a")
        assert (2, 1, 1) == tuple(recorder.count("object", n) for n in ("b", "c", "a"))
        assert 1 <= sample(metrics, "watch_restarts", resource=RESOURCE, reason="gone")

    async def test_apiserver_restart_catches_up(
        self,
        admin_client: KubeClient,
        control_plane: cluster.Cluster,
        namespace: str,
        metrics: Metrics,
    ) -> None:
        """Changes just before and just after an API server restart all reach the handler.

        A stopping kube-apiserver stops listening but keeps open watches open, silent, until
        it exits; the inactivity timeout (short here) is what lets the informer move on.
        """
        plane = control_plane.require_local()
        await kubectl(control_plane, "create", "configmap", "a", "-n", namespace)
        recorder = Recorder()
        async with running_informer(
            admin_client, cm_path(namespace), recorder, metrics, inactivity_timeout=2.0
        ) as task:
            await kubectl(control_plane, "create", "configmap", "b", "-n", namespace)
            await asyncio.to_thread(plane.restart_apiserver)
            await kubectl(control_plane, "create", "configmap", "c", "-n", namespace)
            await kubectl(control_plane, "delete", "configmap", "a", "-n", namespace)
            await eventually(lambda: recorder.names() == {"b", "c"}, task=task)

        restarts = functools.partial(sample, metrics, "watch_restarts", resource=RESOURCE)
        assert 1 <= sum(restarts(reason=r) for r in ("normal_end", "timeout", "error", "gone"))

    async def test_policy_reports(
        self,
        admin_client: KubeClient,
        control_plane: cluster.Cluster,
        namespace: str,
        metrics: Metrics,
    ) -> None:
        """PolicyReports of the installed wgpolicyk8s.io CRD: listed, created, deleted."""
        await kubectl(control_plane, "create", "-f", "-", stdin=_policy_report(namespace, "r1"))
        kind = REPORT_KINDS[0]
        path = discovery.resource_path(kind.group, kind.version, kind.plural, namespace)
        recorder = Recorder()
        async with running_informer(
            admin_client, path, recorder, metrics, resource=kind.plural
        ) as task:
            assert {"r1"} == recorder.names()
            await kubectl(control_plane, "create", "-f", "-", stdin=_policy_report(namespace, "r2"))
            await kubectl(control_plane, "delete", "policyreport", "r1", "-n", namespace)
            await eventually(lambda: recorder.names() == {"r2"}, task=task)

        assert 1 == sample(metrics, "relists", resource="policyreports", reason="initial")


class TestLargeAndMany:
    async def test_event_larger_than_aiohttp_line_limit(
        self,
        admin_client: KubeClient,
        control_plane: cluster.Cluster,
        namespace: str,
        metrics: Metrics,
    ) -> None:
        """A 1 MB object arrives whole on the watch (aiohttp's line reader stops at 512 KiB;
        a trivy report with many CVEs is that large) and the informer keeps running."""
        recorder = Recorder()
        blob = "x" * 1_000_000  # a ConfigMap holds at most 1 MiB
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "big", "namespace": namespace},
            "data": {"blob": blob},
        }
        sizes: list[int] = []
        original = recorder.on_object

        async def on_object(obj: dict[str, Any]) -> None:
            sizes.append(len(obj.get("data", {}).get("blob", "")))
            await original(obj)

        recorder.on_object = on_object  # type: ignore[method-assign]
        async with running_informer(admin_client, cm_path(namespace), recorder, metrics) as task:
            await kubectl(control_plane, "create", "-f", "-", stdin=json.dumps(body))
            await eventually(lambda: "big" in recorder.names(), task=task)
            await kubectl(control_plane, "create", "configmap", "after", "-n", namespace)
            await eventually(lambda: "after" in recorder.names(), task=task)

        assert len(blob) in sizes
        assert 1 == sample(metrics, "relists", resource=RESOURCE, reason="initial")
        restarts = functools.partial(sample, metrics, "watch_restarts", resource=RESOURCE)
        assert 0 == restarts(reason="error")

    async def test_watches_do_not_take_the_request_connections(
        self, control_plane: cluster.Cluster, namespace: str, metrics: Metrics
    ) -> None:
        """Six running watches on a client whose request pool is two connections: calls still
        go through, because each watch holds a connection of the watch pool for its life."""
        connection = await kube_config.load_connection(str(control_plane.kubeconfig("admin")))
        client = KubeClient(connection=connection, timeout=5.0, max_connections=2)
        recorders = [Recorder() for _ in range(6)]
        try:
            async with contextlib.AsyncExitStack() as stack:
                tasks = [
                    await stack.enter_async_context(
                        running_informer(client, cm_path(namespace), recorder, metrics)
                    )
                    for recorder in recorders
                ]
                for index in range(3):
                    await client.request("GET", "/version", timeout=3.0)
                    await client.request("POST", cm_path(namespace), body=_configmap(index))
                for recorder, task in zip(recorders, tasks, strict=True):
                    await eventually(functools.partial(_has_all, recorder), task=task)
        finally:
            await client.close()


def _has_all(recorder: Recorder) -> bool:
    return recorder.names() == {"c0", "c1", "c2"}


def _configmap(index: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{index}"}}


class TestDiscovery:
    async def test_served_resources(self, admin_client: KubeClient) -> None:
        """Plural names of a served group version (no subresources); None when not served."""
        served = await discovery.served_resources(admin_client, f"{POLICY_GROUP}/v1alpha2")
        core = await discovery.served_resources(admin_client, "v1")

        assert served is not None
        assert {"policyreports", "clusterpolicyreports"} <= served
        assert set() == {name for name in served if "/" in name}
        assert core is not None
        assert "configmaps" in core
        assert await discovery.served_resources(admin_client, "nothing.zen.test/v1") is None

    async def test_crd_installed_later_is_announced_once(
        self, admin_client: KubeClient, control_plane: cluster.Cluster, widget_group: str
    ) -> None:
        """A kind is announced once when its CRD appears, and again only after `forget`.

        1. Discovery wants PolicyReport (served) and Widget (its CRD not installed yet).
        2. The Widget CRD is installed while discovery runs.
        3. The supervisor calls `forget(widget)`, as it does after ResourceGone.
        Result: PolicyReport announced once, Widget once after 2 and once more after 3.
        """
        widget = ReportKind(widget_group, "v1", "Widget", "widgets", True)
        announced: list[ReportKind] = []

        async def on_available(kind: ReportKind) -> None:
            announced.append(kind)

        finder = discovery.Discovery(
            client=admin_client,
            wanted=[REPORT_KINDS[0], widget],
            on_available=on_available,
            interval=0.1,
        )
        await finder.check()
        assert [REPORT_KINDS[0]] == announced
        async with running_task(finder.run()) as task:
            await kubectl(control_plane, "apply", "-f", "-", stdin=_crd(widget_group))
            await eventually(lambda: widget in announced, task=task)
            finder.forget(widget)
            await eventually(lambda: 2 == announced.count(widget), task=task)
            await asyncio.sleep(0.3)  # a few more passes announce nothing new

        assert [REPORT_KINDS[0], widget, widget] == announced

    async def test_removed_crd_ends_the_informer(
        self,
        admin_client: KubeClient,
        control_plane: cluster.Cluster,
        namespace: str,
        metrics: Metrics,
        widget_group: str,
    ) -> None:
        """When a watched CRD is deleted, its informer raises ResourceGone (404 on resuming)."""
        await kubectl(control_plane, "apply", "-f", "-", stdin=_crd(widget_group))
        path = discovery.resource_path(widget_group, "v1", "widgets", namespace)
        await until_served(admin_client, path)
        async with running_informer(
            admin_client, path, Recorder(), metrics, resource="widgets"
        ) as task:
            await kubectl(control_plane, "delete", "crd", f"widgets.{widget_group}", "--wait=false")
            with pytest.raises(informer.ResourceGone):
                await asyncio.wait_for(task, timeout=30)


def _policy_report(namespace: str, name: str) -> str:
    """The upstream sample report, renamed into the test namespace."""
    sample_report = yaml.safe_load(
        (SHARED_FIXTURES / "kyverno/policyreport-pod-pass-fail.yaml").read_text()
    )
    report = {key: sample_report[key] for key in ("apiVersion", "kind", "results", "summary")}
    report["metadata"] = {"name": name, "namespace": namespace}
    return yaml.safe_dump(report)


def _crd(group: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{group}"},
            "spec": {
                "group": group,
                "names": {
                    "kind": "Widget",
                    "plural": "widgets",
                    "singular": "widget",
                    "listKind": "WidgetList",
                },
                "scope": "Namespaced",
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }
    )
