"""The Observation CRD on a real kube-apiserver, written with the package's own client code."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.harness.controlplane import cluster
from tests.harness.paths import REPO_ROOT
from zenwatcher.finding import Category, Finding, ResourceRef, Severity
from zenwatcher.kube import errors, observations
from zenwatcher.kube.client import KubeClient
from zenwatcher.observation import LABEL_SEVERITY, to_observation

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _finding(namespace: str, *, severity: Severity = Severity.HIGH) -> Finding:
    return Finding(
        source="falco",
        category=Category.SECURITY,
        severity=severity,
        event_type="runtime_detection",
        identity=("Terminal shell in container", namespace, "web-1", "ee97d9c4186f"),
        resource=ResourceRef(api_version="v1", kind="Pod", name="web-1", namespace=namespace),
        title="Terminal shell in container",
        message="A shell was spawned in a container with an attached terminal",
        details={"rule": "Terminal shell in container", "priority": "Critical"},
    )


def _pinned_kubernetes_version() -> str:
    go_mod = (REPO_ROOT / "tests/harness/controlplane/go.mod").read_text()
    match = re.search(r"^require k8s.io/kubernetes (v\S+)", go_mod, re.MULTILINE)
    assert match is not None
    return match.group(1)


class TestControlPlane:
    def test_server_is_the_pinned_release(self, control_plane: cluster.Cluster) -> None:
        """The tests talk to the kube-apiserver built from the pinned Go module."""
        if control_plane.local is None:
            pytest.skip("an external cluster runs its own version")
        assert _pinned_kubernetes_version() == control_plane.server_version()["gitVersion"]

    def test_crds_are_served(self, control_plane: cluster.Cluster) -> None:
        """Our CRD and the upstream report CRDs are Established and in discovery."""
        resources = control_plane.kubectl("api-resources", "-o", "name").stdout.split()
        expected = {
            "observations.zen.kube-zen.io",
            "policyreports.wgpolicyk8s.io",
            "clusterpolicyreports.wgpolicyk8s.io",
            "reports.openreports.io",
            "vulnerabilityreports.aquasecurity.github.io",
            "configauditreports.aquasecurity.github.io",
        }
        assert set() == expected - set(resources)


class TestObservationRoundTrip:
    async def test_create_and_read_back(
        self, watcher_client: KubeClient, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """As the restricted user: create, set status, read back the same fields."""
        finding = _finding(namespace)
        body = to_observation(finding, namespace=namespace, now=NOW, ttl_seconds=3600)
        created = await observations.create_observation(watcher_client, body)
        await observations.patch_status(
            watcher_client, namespace, finding.name, status=body["status"]
        )
        stored = await observations.get_observation(watcher_client, namespace, finding.name)

        assert finding.name == created["metadata"]["name"]
        assert body["spec"] == stored["spec"]
        assert {
            "count": 1,
            "firstSeen": "2026-01-02T03:04:05Z",
            "lastSeen": "2026-01-02T03:04:05Z",
        } == stored["status"]
        assert "high" == stored["metadata"]["labels"][LABEL_SEVERITY]

    async def test_second_create_is_a_conflict(
        self, watcher_client: KubeClient, namespace: str
    ) -> None:
        """The same finding created twice: the API server itself answers 409 AlreadyExists."""
        body = to_observation(_finding(namespace), namespace=namespace, now=NOW, ttl_seconds=3600)
        await observations.create_observation(watcher_client, body)
        with pytest.raises(errors.Conflict) as raised:
            await observations.create_observation(watcher_client, body)
        assert raised.value.already_exists

    async def test_printer_columns(
        self, watcher_client: KubeClient, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """`kubectl get obs -A` shows Source, Severity, Category, Type, Resource, Count, Phase
        (from the phase label), Age."""
        finding = _finding(namespace)
        body = to_observation(finding, namespace=namespace, now=NOW, ttl_seconds=3600)
        await observations.create_observation(watcher_client, body)
        await observations.patch_status(
            watcher_client, namespace, finding.name, status=body["status"]
        )

        table = control_plane.kubectl("get", "obs", "-A", user="zen-watcher").stdout.splitlines()
        header = table[0].split()
        row = next(line.split() for line in table if finding.name in line)

        assert [
            "NAMESPACE",
            "NAME",
            "SOURCE",
            "SEVERITY",
            "CATEGORY",
            "TYPE",
            "RESOURCE",
            "COUNT",
            "PHASE",
            "AGE",
        ] == header
        assert [
            namespace,
            finding.name,
            "falco",
            "high",
            "security",
            "runtime_detection",
            "web-1",
            "1",
            "open",
        ] == row[:9]


class TestSchemaValidation:
    @pytest.mark.parametrize(
        ("field", "value", "complaint"),
        [
            ("severity", "HIGH", 'spec.severity: Unsupported value: "HIGH"'),
            ("eventType", "Runtime-Detection", "spec.eventType: Invalid value"),
            ("source", "Falco_Sidekick", "spec.source: Invalid value"),
            ("category", "fun", 'spec.category: Unsupported value: "fun"'),
        ],
    )
    async def test_invalid_observation_is_refused(
        self, watcher_client: KubeClient, namespace: str, field: str, value: str, complaint: str
    ) -> None:
        """The API server's schema refuses bad enums and patterns with a message naming the field."""
        body = to_observation(_finding(namespace), namespace=namespace, now=NOW, ttl_seconds=3600)
        body["spec"][field] = value
        with pytest.raises(errors.ApiError) as raised:
            await observations.create_observation(watcher_client, body)
        assert 422 == raised.value.status
        assert complaint in raised.value.message

    def test_kubectl_shows_the_reason(
        self, control_plane: cluster.Cluster, namespace: str, tmp_path: Path
    ) -> None:
        """A user applying an invalid Observation with kubectl sees which field is wrong."""
        manifest = tmp_path / "bad.yaml"
        manifest.write_text(
            "apiVersion: zen.kube-zen.io/v1alpha1\nkind: Observation\n"
            f"metadata: {{name: bad, namespace: {namespace}}}\n"
            "spec: {source: falco, category: security, severity: Critical, eventType: x,"
            " fingerprint: 0123456789abcdef, detectedAt: '2026-01-01T00:00:00Z'}\n"
        )
        result = control_plane.kubectl(
            "apply", "-f", str(manifest), user="zen-watcher", check=False
        )
        assert 0 != result.returncode
        assert 'spec.severity: Unsupported value: "Critical"' in result.stderr
