"""The shipped manifests on a real API server: they apply, and their RBAC is least privilege."""

from __future__ import annotations

import pytest
import yaml

from tests.harness.controlplane import cluster
from tests.harness.paths import REPO_ROOT

KUSTOMIZATIONS = [
    "manifests",
    "manifests/examples/shards",
    "manifests/examples/hpa",
    "manifests/examples/filter",
]


class TestApply:
    @pytest.mark.parametrize("path", KUSTOMIZATIONS)
    def test_kustomization_applies_with_server_side_validation(
        self, control_plane: cluster.Cluster, path: str
    ) -> None:
        """`kubectl apply -k` passes the API server's validation (dry run, nothing persisted)."""
        result = control_plane.kubectl(
            "apply",
            "-k",
            str(REPO_ROOT / path),
            "--dry-run=server",
            "--server-side",
            "--force-conflicts",
            check=False,
        )
        assert 0 == result.returncode, result.stderr


class TestShards:
    def test_webhooks_reach_only_the_unsharded_tier(self, control_plane: cluster.Cluster) -> None:
        """In the shards example the zen-watcher Service selects the webhook tier's pods (no
        WATCH_NAMESPACE, WATCH_REPORTS=false, a Lease of its own) and no shard's: a shard would filter the other
        namespaces' findings as out_of_scope."""
        built = control_plane.kubectl(
            "kustomize", str(REPO_ROOT / "manifests/examples/shards")
        ).stdout
        documents = [doc for doc in yaml.safe_load_all(built) if doc]
        service = next(
            doc
            for doc in documents
            if doc["kind"] == "Service" and doc["metadata"]["name"] == "zen-watcher"
        )
        selector = service["spec"]["selector"].items()
        selected = {
            doc["metadata"]["name"]: doc["spec"]["template"]["spec"]["containers"][0]["env"]
            for doc in documents
            if doc["kind"] == "Deployment"
            and selector <= doc["spec"]["template"]["metadata"]["labels"].items()
        }
        assert ["zen-watcher-webhooks"] == list(selected)
        env = {item["name"]: item.get("value") for item in selected["zen-watcher-webhooks"]}
        assert "false" == env["WATCH_REPORTS"]
        assert "zen-watcher-webhooks" == env["LEADER_ELECTION_ID"]
        assert "WATCH_NAMESPACE" not in env


class TestLeastPrivilege:
    @pytest.mark.parametrize(
        ("verb", "resource", "namespace"),
        [
            ("create", "observations.zen.kube-zen.io", "default"),
            ("patch", "observations.zen.kube-zen.io/status", "default"),
            ("delete", "observations.zen.kube-zen.io", "default"),
            ("watch", "policyreports.wgpolicyk8s.io", "default"),
            ("list", "clustervulnerabilityreports.aquasecurity.github.io", ""),
            ("update", "leases.coordination.k8s.io", "zen-system"),
            ("watch", "configmaps/zen-watcher-filter", "zen-system"),
        ],
    )
    def test_allowed(
        self, control_plane: cluster.Cluster, verb: str, resource: str, namespace: str
    ) -> None:
        """What the code uses is granted."""
        assert "yes" == self._can(control_plane, verb, resource, namespace)

    @pytest.mark.parametrize(
        ("verb", "resource", "namespace"),
        [
            ("get", "secrets", "zen-system"),
            ("list", "secrets", "default"),
            ("get", "configmaps/other", "zen-system"),
            ("create", "configmaps", "zen-system"),
            ("update", "leases.coordination.k8s.io", "default"),
            ("delete", "leases.coordination.k8s.io", "zen-system"),
            ("update", "policyreports.wgpolicyk8s.io", "default"),
            ("create", "pods", "default"),
            ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
            # Verbs the code does not use, on what it does use.
            ("update", "observations.zen.kube-zen.io", "default"),
            ("patch", "observations.zen.kube-zen.io", "default"),
            ("update", "observations.zen.kube-zen.io/status", "default"),
            ("get", "policyreports.wgpolicyk8s.io", "default"),
        ],
    )
    def test_refused(
        self, control_plane: cluster.Cluster, verb: str, resource: str, namespace: str
    ) -> None:
        """What it must not do is refused: Secrets, writes outside Observations and its Lease."""
        assert "no" == self._can(control_plane, verb, resource, namespace)

    def test_reading_a_secret_is_forbidden_for_real(self, control_plane: cluster.Cluster) -> None:
        """Not only can-i: an actual read of a Secret as the zen-watcher user gets 403."""
        result = control_plane.kubectl(
            "get", "secrets", "-n", "zen-system", user="zen-watcher", check=False
        )
        assert 0 != result.returncode
        assert "forbidden" in result.stderr.lower()

    @staticmethod
    def _can(control_plane: cluster.Cluster, verb: str, resource: str, namespace: str) -> str:
        scope = ["-n", namespace] if namespace else []
        # "kind/x" means the object named x to can-i; a status subresource needs its flag.
        kind, _, subresource = resource.partition("/status")
        target = [kind, "--subresource=status"] if resource.endswith("/status") else [resource]
        assert not subresource
        result = control_plane.kubectl(
            "auth", "can-i", verb, *target, *scope, user="zen-watcher", check=False
        )
        return result.stdout.strip()
