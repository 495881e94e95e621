"""GC on a real kube-apiserver: expiry, scope, preconditions, pagination and delete rate.

Observations are written as admin; every sweep runs as the restricted `zen-watcher` user, so the
shipped ClusterRole is what lets GC list and delete. The only fakes are injected faults: a client
that lets a test act just before a call goes out (a racing update, a failing list page).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry

from tests.harness.controlplane import cluster
from tests.harness.hooked_client import HookedClient
from zenwatcher.finding import Category, Finding, ResourceRef, Severity
from zenwatcher.kube import errors, observations
from zenwatcher.kube.client import MERGE_PATCH, KubeClient, Params
from zenwatcher.leader import gc
from zenwatcher.metrics import Metrics
from zenwatcher.observation import (
    LABEL_ORIGIN,
    REASON_LAST_SEEN,
    REASON_RESOLVED,
    rfc3339,
    to_observation,
)
from zenwatcher.pacing import TokenBucket

TTL = 3600
DEFAULT_TTL = 7 * 86400


@pytest.fixture(name="other_namespaces")
def _other_namespaces(control_plane: cluster.Cluster) -> Iterator[tuple[str, str]]:
    """Two more namespaces of this test's own, deleted afterwards (without waiting)."""
    names = (f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}")
    for name in names:
        control_plane.kubectl("create", "namespace", name)
    yield names
    for name in names:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(name="metrics")
def _metrics() -> Metrics:
    """Fresh collectors on a registry of this test's own."""
    return Metrics(CollectorRegistry())


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _finding(namespace: str, key: str) -> Finding:
    return Finding(
        source="falco",
        category=Category.SECURITY,
        severity=Severity.HIGH,
        event_type="runtime_detection",
        identity=("Terminal shell in container", namespace, key),
        resource=ResourceRef(api_version="v1", kind="Pod", name=key, namespace=namespace),
        title="Terminal shell in container",
    )


async def _create(
    admin: KubeClient,
    namespace: str,
    key: str,
    *,
    last_seen: datetime | None,
    ttl: int = TTL,
) -> str:
    """An Observation last seen at `last_seen`; None creates it without a status (as another
    writer, or an earlier version whose status write never happened, leaves one)."""
    finding = _finding(namespace, key)
    body = to_observation(finding, namespace=namespace, now=last_seen or _utcnow(), ttl_seconds=ttl)
    if last_seen is None:
        del body["status"]
    await observations.create_observation(admin, body)
    return finding.name


async def _expired(admin: KubeClient, namespace: str, key: str) -> str:
    return await _create(admin, namespace, key, last_seen=_utcnow() - timedelta(hours=2))


async def _fresh(admin: KubeClient, namespace: str, key: str) -> str:
    return await _create(admin, namespace, key, last_seen=_utcnow())


async def _names(admin: KubeClient, namespace: str) -> set[str]:
    listing = observations.list_observations(admin, namespace=namespace)
    return {item["metadata"]["name"] async for item in listing}


async def _sweep(
    client: KubeClient,
    metrics: Metrics,
    *,
    namespaces: tuple[str, ...],
    now: Callable[[], datetime] = _utcnow,
    page_size: int = 500,
    limiter: TokenBucket | None = None,
) -> gc.SweepResult:
    return await gc.sweep_once(
        gc.Collector(
            client=client,
            namespaces=namespaces,
            default_ttl=DEFAULT_TTL,
            page_size=page_size,
            limiter=limiter or TokenBucket(rate=0, burst=1),
            metrics=metrics,
            now=now,
        )
    )


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


class TestExpiry:
    async def test_expired_deleted_fresh_kept(
        self, spy_client: KubeClient, admin_client: KubeClient, namespace: str, metrics: Metrics
    ) -> None:
        """lastSeen + TTL in the past: deleted; lastSeen just now: kept; one canonical log line."""
        expired = await _expired(admin_client, namespace, "old")
        fresh = await _fresh(admin_client, namespace, "new")

        with structlog.testing.capture_logs() as logs:
            result = await _sweep(spy_client, metrics, namespaces=(namespace,))

        assert {fresh} == await _names(admin_client, namespace)
        assert expired != fresh
        assert (2, 1, 0, "ok") == (result.examined, result.deleted, result.errors, result.outcome)
        assert 1.0 == _sample(metrics, "zen_watcher_gc_deleted_total", reason=REASON_LAST_SEEN)
        assert 1.0 == _sample(metrics, "zen_watcher_gc_runs_total", outcome="ok")
        assert 1.0 == _sample(metrics, "zen_watcher_gc_duration_seconds_count")
        finished = [entry for entry in logs if entry["event"] == "gc_sweep_finished"]
        assert [(2, 1, [namespace])] == [
            (entry["examined"], entry["deleted"], entry["namespaces"]) for entry in finished
        ]

    async def test_report_findings_expire_only_once_resolved(
        self, spy_client: KubeClient, admin_client: KubeClient, namespace: str, metrics: Metrics
    ) -> None:
        """Report-derived, all last seen two hours ago (TTL one hour): the Open one is kept (its
        report still holds it), the one Resolved two hours ago is deleted, the one Resolved just
        now is kept."""
        long_ago = _utcnow() - timedelta(hours=2)
        phases = {
            "open": ("Open", None),
            "resolved-old": ("Resolved", long_ago),
            "resolved-new": ("Resolved", _utcnow()),
        }
        names = {}
        for key, (phase, resolved_at) in phases.items():
            names[key] = await _create(admin_client, namespace, key, last_seen=long_ago)
            origin = {"metadata": {"labels": {LABEL_ORIGIN: f"report-{key}"}}}
            await admin_client.request(
                "PATCH",
                observations.object_path(namespace, names[key]),
                body=origin,
                content_type=MERGE_PATCH,
            )
            status: dict[str, Any] = {"phase": phase}
            if resolved_at is not None:
                status["resolvedAt"] = rfc3339(resolved_at)
            await observations.patch_status(admin_client, namespace, names[key], status=status)

        result = await _sweep(spy_client, metrics, namespaces=(namespace,))

        assert {names["open"], names["resolved-new"]} == await _names(admin_client, namespace)
        assert (3, 1, 0) == (result.examined, result.deleted, result.errors)
        assert 1.0 == _sample(metrics, "zen_watcher_gc_deleted_total", reason=REASON_RESOLVED)

    async def test_without_status_counts_from_creation(
        self, spy_client: KubeClient, admin_client: KubeClient, namespace: str, metrics: Metrics
    ) -> None:
        """No status: creation (just now) + 60 s is kept now and deleted two minutes later."""
        name = await _create(admin_client, namespace, "bare", last_seen=None, ttl=60)

        kept = await _sweep(spy_client, metrics, namespaces=(namespace,))
        assert {name} == await _names(admin_client, namespace)

        later = _utcnow() + timedelta(minutes=2)
        swept = await _sweep(spy_client, metrics, namespaces=(namespace,), now=lambda: later)
        assert set() == await _names(admin_client, namespace)
        assert (0, 1) == (kept.deleted, swept.deleted)
        assert 1.0 == _sample(metrics, "zen_watcher_gc_deleted_total", reason="ttl_created")


class TestScope:
    async def test_only_listed_namespaces(
        self,
        spy_client: HookedClient,
        admin_client: KubeClient,
        namespace: str,
        other_namespaces: tuple[str, str],
        metrics: Metrics,
    ) -> None:
        """WATCH_NAMESPACE=a,b: expired Observations in a and b go, the one in c stays."""
        ns_b, ns_c = other_namespaces
        for each in (namespace, ns_b, ns_c):
            await _expired(admin_client, each, "old")

        result = await _sweep(spy_client, metrics, namespaces=(namespace, ns_b))

        assert 2 == result.deleted
        assert set() == await _names(admin_client, namespace)
        assert set() == await _names(admin_client, ns_b)
        assert 1 == len(await _names(admin_client, ns_c))
        listed = {path for method, path, _ in spy_client.calls if method == "GET"}
        assert {observations.collection_path(ns) for ns in (namespace, ns_b)} == listed

    async def test_a_selector_scope_is_read_at_each_sweep(
        self,
        spy_client: HookedClient,
        admin_client: KubeClient,
        namespace: str,
        other_namespaces: tuple[str, str],
        metrics: Metrics,
    ) -> None:
        """WATCH_NAMESPACE_SELECTOR: each sweep covers the namespaces in scope at that moment;
        a namespace that left is not swept (its Observations are left as they are)."""
        ns_b, _ = other_namespaces
        in_scope: tuple[str, ...] = (namespace, ns_b)
        collector = gc.Collector(
            client=spy_client,
            namespaces=(),
            default_ttl=DEFAULT_TTL,
            page_size=500,
            limiter=TokenBucket(rate=0, burst=1),
            metrics=metrics,
            now=_utcnow,
            scope=lambda: in_scope,
        )
        await _expired(admin_client, ns_b, "first")
        assert 1 == (await gc.sweep_once(collector)).deleted
        in_scope = (namespace,)
        await _expired(admin_client, ns_b, "second")
        assert 0 == (await gc.sweep_once(collector)).deleted
        assert 1 == len(await _names(admin_client, ns_b))

    async def test_cluster_wide_when_no_namespaces(
        self,
        spy_client: HookedClient,
        admin_client: KubeClient,
        namespace: str,
        other_namespaces: tuple[str, str],
        metrics: Metrics,
    ) -> None:
        """WATCH_NAMESPACE empty: one cluster-wide list finds expired ones in every namespace."""
        for each in (namespace, *other_namespaces):
            await _expired(admin_client, each, "old")
            await _fresh(admin_client, each, "new")

        result = await _sweep(spy_client, metrics, namespaces=())

        for each in (namespace, *other_namespaces):
            assert 1 == len(await _names(admin_client, each))
        assert 3 <= result.deleted
        listed = {path for method, path, _ in spy_client.calls if method == "GET"}
        assert {observations.collection_path(None)} == listed


class TestPreconditions:
    async def test_stale_read_is_not_deleted(
        self, spy_client: KubeClient, admin_client: KubeClient, namespace: str
    ) -> None:
        """A delete conditioned on an outdated resourceVersion is skipped as changed."""
        name = await _expired(admin_client, namespace, "old")
        stale = await observations.get_observation(admin_client, namespace, name)
        await observations.patch_status(
            admin_client, namespace, name, status={"lastSeen": rfc3339(_utcnow())}
        )

        outcome = await gc.delete_expired(
            client=spy_client, observation=stale, limiter=TokenBucket(rate=0, burst=1)
        )

        assert gc.DeleteOutcome.CHANGED == outcome
        assert {name} == await _names(admin_client, namespace)

    async def test_already_deleted_is_fine(
        self, spy_client: KubeClient, admin_client: KubeClient, namespace: str
    ) -> None:
        """Deleting what someone else deleted first is not an error."""
        name = await _expired(admin_client, namespace, "old")
        read = await observations.get_observation(admin_client, namespace, name)
        await observations.delete_observation(admin_client, namespace, name)

        outcome = await gc.delete_expired(
            client=spy_client, observation=read, limiter=TokenBucket(rate=0, burst=1)
        )

        assert gc.DeleteOutcome.GONE == outcome

    async def test_update_between_list_and_delete_survives(
        self, spy_client: HookedClient, admin_client: KubeClient, namespace: str, metrics: Metrics
    ) -> None:
        """Scenario: a repeat of the finding lands while GC is about to delete it.

        1. An expired Observation is listed by the sweep.
        2. Just before the DELETE goes out, the writer (as admin) moves its lastSeen to now.
        3. The DELETE carries the listed resourceVersion.
        Result: the API server refuses it, the Observation survives, and it is no error.
        """
        name = await _expired(admin_client, namespace, "old")

        async def racing_update(method: str, path: str, params: Params | None, body: Any) -> None:
            if method == "DELETE":
                status = {"lastSeen": rfc3339(_utcnow())}
                await observations.patch_status(admin_client, namespace, name, status=status)

        spy_client.before = racing_update
        result = await _sweep(spy_client, metrics, namespaces=(namespace,))

        assert {name} == await _names(admin_client, namespace)
        assert (1, 0, 0, "ok") == (result.changed, result.deleted, result.errors, result.outcome)
        assert 0.0 == _sample(metrics, "zen_watcher_gc_errors_total", reason="delete")


class TestPagination:
    async def test_pages_of_two(
        self, spy_client: HookedClient, admin_client: KubeClient, namespace: str, metrics: Metrics
    ) -> None:
        """Seven Observations in pages of two: deleting as it goes never loses the next page."""
        fresh = {await _fresh(admin_client, namespace, f"new-{index}") for index in range(2)}
        for index in range(5):
            await _expired(admin_client, namespace, f"old-{index}")

        result = await _sweep(spy_client, metrics, namespaces=(namespace,), page_size=2)

        assert fresh == await _names(admin_client, namespace)
        assert (7, 5) == (result.examined, result.deleted)
        pages = [params for method, _, params in spy_client.calls if method == "GET"]
        assert 4 == len(pages)
        assert {"2"} == {str(params["limit"]) for params in pages}
        assert 3 == sum("continue" in params for params in pages)

    async def test_failed_page_ends_the_sweep_as_error(
        self, spy_client: HookedClient, admin_client: KubeClient, namespace: str, metrics: Metrics
    ) -> None:
        """A 503 on the second page stops the sweep: first page deleted, the rest kept for later."""
        for index in range(4):
            await _expired(admin_client, namespace, f"old-{index}")

        async def unavailable(method: str, path: str, params: Params | None, body: Any) -> None:
            if method == "GET" and params and "continue" in params:
                raise errors.error_for(503, {"reason": "ServiceUnavailable"})

        spy_client.before = unavailable
        result = await _sweep(spy_client, metrics, namespaces=(namespace,), page_size=2)

        assert ("error", 2, 1) == (result.outcome, result.deleted, result.errors)
        assert 2 == len(await _names(admin_client, namespace))
        assert 1.0 == _sample(metrics, "zen_watcher_gc_runs_total", outcome="error")
        assert 1.0 == _sample(metrics, "zen_watcher_gc_errors_total", reason="list")


class TestDeleteRate:
    async def test_deletes_wait_for_the_token_bucket(
        self, spy_client: KubeClient, admin_client: KubeClient, namespace: str, metrics: Metrics
    ) -> None:
        """At 5 deletes/s with a burst of 1, six deletes take at least a second."""
        for index in range(6):
            await _expired(admin_client, namespace, f"old-{index}")

        started = time.monotonic()
        result = await _sweep(
            spy_client, metrics, namespaces=(namespace,), limiter=TokenBucket(rate=5, burst=1)
        )
        elapsed = time.monotonic() - started

        assert 6 == result.deleted
        assert 1.0 <= elapsed


class TestSweeper:
    async def test_sweeps_again_after_the_interval(
        self, spy_client: KubeClient, admin_client: KubeClient, namespace: str, metrics: Metrics
    ) -> None:
        """The sweeper deletes at once (initial delay 0), and again after each interval."""
        first = await _expired(admin_client, namespace, "first")
        sweeper = asyncio.create_task(
            gc.gc_sweeper(
                gc.Collector(
                    client=spy_client,
                    namespaces=(namespace,),
                    default_ttl=DEFAULT_TTL,
                    page_size=500,
                    limiter=TokenBucket(rate=0, burst=1),
                    metrics=metrics,
                    now=_utcnow,
                ),
                interval=0.2,
                initial_delay=0,
            )
        )
        try:
            await _wait_until_empty(admin_client, namespace)
            second = await _expired(admin_client, namespace, "second")
            await _wait_until_empty(admin_client, namespace)
            # A sweep counts its run after its deletes: let the second one finish counting.
            for _ in range(100):
                if _sample(metrics, "zen_watcher_gc_runs_total", outcome="ok") >= 2:
                    break
                await asyncio.sleep(0.05)
        finally:
            sweeper.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sweeper

        assert first != second
        assert 2.0 <= _sample(metrics, "zen_watcher_gc_runs_total", outcome="ok")
        assert 2.0 == _sample(metrics, "zen_watcher_gc_deleted_total", reason="ttl_last_seen")


async def _wait_until_empty(admin: KubeClient, namespace: str, *, polls: int = 100) -> None:
    """Poll every 50 ms (5 s at most) until the namespace holds no Observation."""
    for _ in range(polls):
        if not await _names(admin, namespace):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"Observations left in {namespace}: {await _names(admin, namespace)}")
