"""The writer on the real API server: findings larger than an Observation may be, and status
updates with one injected fault, an answer lost after the server applied the write (the
connection drops on the way back). That moment cannot be produced on demand any other way, so
the client applies the call for real and then raises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.harness.controlplane import cluster
from tests.harness.hooked_client import HookedClient
from tests.harness.writers import make_writer
from zenwatcher.finding import Category, Finding, ResourceRef, Severity
from zenwatcher.kube import config as kube_config
from zenwatcher.kube import errors, observations
from zenwatcher.kube.client import KubeClient, Params
from zenwatcher.metrics import Metrics
from zenwatcher.observation import rfc3339
from zenwatcher.pipeline.jobs import CreateJob, IncrementJob
from zenwatcher.pipeline.writer import Writer

pytestmark = pytest.mark.apiserver


class LosesAnswers(HookedClient):
    """Our client; the next status patch fails with a dropped connection, after the server
    applied it (`applied`) or before it reached the server."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_next_patch: bool = False
        self.applied = True
        self.patches = 0
        self._failing = False
        self.before, self.after = self._drop_before, self._drop_after

    async def _drop_before(self, method: str, path: str, params: Params | None, body: Any) -> None:
        self._failing = method == "PATCH" and self.fail_next_patch
        if self._failing:
            self.fail_next_patch = False
            if not self.applied:
                raise errors.TransportError(f"PATCH {path}: connection refused (injected)")

    async def _drop_after(self, method: str, path: str, answer: dict[str, Any]) -> None:
        if method == "PATCH":
            self.patches += 1
        if self._failing:
            raise errors.TransportError(f"PATCH {path}: connection reset (injected)")


@pytest.fixture(name="losing_client")
async def _losing_client(control_plane: cluster.Cluster) -> AsyncIterator[LosesAnswers]:
    connection = await kube_config.load_connection(str(control_plane.kubeconfig("zen-watcher")))
    client = LosesAnswers(connection=connection, timeout=10.0)
    yield client
    await client.close()


def writer_on(client: KubeClient) -> Writer:
    return make_writer(
        client, Metrics(CollectorRegistry()), retry_for=30.0, default_namespace="default"
    )


def finding(namespace: str) -> Finding:
    return Finding(
        source="falco",
        category=Category.SECURITY,
        severity=Severity.HIGH,
        event_type="runtime_detection",
        identity=("Terminal shell in container", namespace, "web"),
        resource=ResourceRef(api_version="v1", kind="Pod", name="web", namespace=namespace),
        title="Terminal shell in container",
    )


@pytest.mark.parametrize("applied", [True, False])
async def test_a_lost_answer_is_counted_once(
    losing_client: LosesAnswers, admin_client: KubeClient, namespace: str, applied: bool
) -> None:
    """Create (count 1), then +5 whose patch fails with a dropped connection, after the server
    applied it or before: the count is 6 either way (a blind retry made it 11)."""
    seen = datetime.now(UTC).replace(microsecond=0)
    found = finding(namespace)
    writer = writer_on(losing_client)
    await writer.write(CreateJob(finding=found, namespace=namespace, seen_at=seen))
    losing_client.fail_next_patch, losing_client.applied = True, applied
    later = seen + timedelta(seconds=30)
    await writer.write(
        IncrementJob(finding=found, namespace=namespace, count_delta=5, last_seen=later)
    )

    stored = await observations.get_observation(admin_client, namespace, found.name)
    assert 6 == stored["status"]["count"]
    assert rfc3339(later) == stored["status"]["lastSeen"]
    assert 1 == losing_client.patches  # the increment's, applied once (a create is one call)


async def test_an_oversized_finding_is_written_clipped(
    losing_client: LosesAnswers, admin_client: KubeClient, namespace: str
) -> None:
    """A 1,100-character rule, a 40 kB output and a 3 MB field (past the CRD's title and
    message limits and etcd's object limit) still make an Observation, clipped and marked."""
    found = finding(namespace)
    found.title = "r" * 1100
    found.message = "m" * 40_000
    found.details = {"rule": found.title, "output_fields": {"big": "x" * 3_000_000}, "n": 1}
    writer = writer_on(losing_client)
    await writer.write(CreateJob(finding=found, namespace=namespace, seen_at=datetime.now(UTC)))

    stored = await observations.get_observation(admin_client, namespace, found.name)
    spec = stored["spec"]
    assert (1024, 32768) == (len(spec["title"]), len(spec["message"]))
    assert spec["title"].endswith("…")
    assert spec["details"]["truncated"] is True
    assert 4096 == len(spec["details"]["output_fields"]["big"])
    assert 1 == spec["details"]["n"]
    assert 1 == stored["status"]["count"]
