"""`kubectl apply` of the shipped CRD over the earlier one, which had a status subresource.

Observations written before (a create, then a patch of `/status`) must still read and update
correctly once the subresource is gone: the writer now patches the object itself. The test puts
the earlier CRD back for a moment on the session's API server and re-applies the shipped one
whatever happens.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.harness.controlplane import cluster
from tests.harness.paths import REPO_ROOT
from tests.harness.writers import make_writer
from zenwatcher.finding import Category, Finding, Origin, ResourceRef, Severity
from zenwatcher.kube import errors, observations
from zenwatcher.kube.client import MERGE_PATCH, KubeClient
from zenwatcher.metrics import Metrics
from zenwatcher.observation import Phase, existing_from, expiry_of, rfc3339, to_observation
from zenwatcher.pipeline.jobs import IncrementJob, ResolveJob

pytestmark = pytest.mark.apiserver

SHIPPED_CRD = REPO_ROOT / "manifests/crds/observations.yaml"
SEEN = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _earlier_crd() -> str:
    """The shipped CRD as it was before: the same schema with the status subresource."""
    crd = yaml.safe_load(SHIPPED_CRD.read_text())
    earlier = copy.deepcopy(crd)
    earlier["spec"]["versions"][0]["subresources"] = {"status": {}}
    return yaml.safe_dump(earlier)


def _report_finding(namespace: str) -> Finding:
    return Finding(
        source="kyverno",
        category=Category.SECURITY,
        severity=Severity.MEDIUM,
        event_type="policy_violation",
        identity=("policy_violation", "Pod", namespace, "web-1", "require-labels", "check"),
        resource=ResourceRef(api_version="v1", kind="Pod", name="web-1", namespace=namespace),
        title="require-labels/check",
        origin=Origin(uid="uid-1", key="0123456789abcdef"),
    )


async def _status_path_answers(client: KubeClient, namespace: str, name: str) -> bool:
    """Whether `/status` of the object is served (the subresource exists)."""
    try:
        await client.request(
            "GET", observations.object_path(namespace, name) + "/status", timeout=5.0
        )
    except errors.NotFound:
        return False
    return True


async def _status_path_gone(client: KubeClient, namespace: str, name: str) -> bool:
    return not await _status_path_answers(client, namespace, name)


async def _until(check: Callable[[], Awaitable[bool]], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the API server did not switch CRDs in time")


@pytest.fixture(name="shipped_crd_restored")
def _shipped_crd_restored(control_plane: cluster.Cluster) -> Iterator[None]:
    yield
    control_plane.kubectl("apply", "-f", str(SHIPPED_CRD))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/observations.zen.kube-zen.io", "--timeout=60s"
    )


@pytest.mark.usefixtures("shipped_crd_restored")
async def test_observations_written_under_the_earlier_crd_update_after_the_upgrade(
    control_plane: cluster.Cluster,
    admin_client: KubeClient,
    watcher_client: KubeClient,
    namespace: str,
) -> None:
    """Written the old way (create, then `/status`), then the shipped CRD applied over it: the
    shipped RBAC and writer add counts and resolve it, and reconciliation reads it as Open."""
    finding = _report_finding(namespace)
    body = to_observation(finding, namespace=namespace, now=SEEN, ttl_seconds=3600, count=3)
    control_plane.kubectl("apply", "-f", "-", stdin=_earlier_crd())
    created = await observations.create_observation(admin_client, body)
    await _until(lambda: _status_path_answers(admin_client, namespace, finding.name))
    # The earlier writer: the create's status was dropped, so it patched /status after it.
    assert "status" not in created or not created["status"]
    await admin_client.request(
        "PATCH",
        observations.object_path(namespace, finding.name) + "/status",
        body={"status": body["status"]},
        content_type=MERGE_PATCH,
    )

    control_plane.kubectl("apply", "-f", str(SHIPPED_CRD))
    await _until(lambda: _status_path_gone(admin_client, namespace, finding.name), timeout=60.0)

    stored = await observations.get_observation(watcher_client, namespace, finding.name)
    name, existing = existing_from(stored)
    assert (finding.name, Phase.OPEN) == (name, existing.phase)
    assert expiry_of(stored, default_ttl=3600) is not None

    metrics = Metrics(CollectorRegistry())
    writer = make_writer(watcher_client, metrics, retry_for=10.0)
    later = SEEN + timedelta(minutes=5)
    await writer.write(
        IncrementJob(finding=finding, namespace=namespace, count_delta=2, last_seen=later)
    )
    await writer.write(
        ResolveJob(name=finding.name, namespace=namespace, source="kyverno", resolved_at=later)
    )

    stored = await observations.get_observation(watcher_client, namespace, finding.name)
    assert 5 == stored["status"]["count"]
    assert rfc3339(SEEN) == stored["status"]["firstSeen"]
    assert rfc3339(later) == stored["status"]["lastSeen"]
    assert Phase.RESOLVED == stored["status"]["phase"]
    assert rfc3339(later) == stored["status"]["resolvedAt"]
