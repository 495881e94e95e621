"""The shipped manifests on a real API server: they apply, and their RBAC is least privilege."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml

from tests.harness import namespaces
from tests.harness.controlplane import cluster
from tests.harness.paths import REPO_ROOT
from zenwatcher.settings import Settings

KUSTOMIZATIONS = [
    "manifests",
    "manifests/examples/shards",
    "manifests/examples/hpa",
    "manifests/examples/filter",
    "manifests/examples/mtls",
]
FILTER_NAMESPACE_EXAMPLE = REPO_ROOT / "manifests/examples/filter-namespace"
SERVICE_ACCOUNT = "system:serviceaccount:zen-system:zen-watcher"


def built(control_plane: cluster.Cluster, path: str) -> list[dict[str, Any]]:
    """The documents `kubectl kustomize` makes of `path`."""
    output = control_plane.kubectl("kustomize", str(REPO_ROOT / path)).stdout
    return [document for document in yaml.safe_load_all(output) if document]


def readme_command(marker: str) -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    found = re.search(
        rf"<!-- {marker}:start -->\n```sh\n(.*?)```\n<!-- {marker}:end -->", readme, re.S
    )
    assert found is not None, f"README.md has no {marker} block"
    return found.group(1).strip()


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
        assert "WATCH_NAMESPACE_SELECTOR" not in env

    def test_shards_select_namespaces_by_disjoint_labels(
        self, control_plane: cluster.Cluster
    ) -> None:
        """Shard a selects zen.kube-zen.io/shard=a, shard b =b; only a takes cluster reports;
        the selectors pass the daemon's own check."""
        env = {
            doc["metadata"]["name"]: {
                item["name"]: item.get("value")
                for item in doc["spec"]["template"]["spec"]["containers"][0]["env"]
            }
            for doc in built(control_plane, "manifests/examples/shards")
            if doc["kind"] == "Deployment"
        }
        shard_a, shard_b = env["zen-watcher-shard-a"], env["zen-watcher-shard-b"]
        assert "zen.kube-zen.io/shard=a" == shard_a["WATCH_NAMESPACE_SELECTOR"]
        assert "zen.kube-zen.io/shard=b" == shard_b["WATCH_NAMESPACE_SELECTOR"]
        assert ("true", "false") == (
            shard_a["WATCH_CLUSTER_REPORTS"],
            shard_b["WATCH_CLUSTER_REPORTS"],
        )
        for shard in (shard_a, shard_b):
            assert "WATCH_NAMESPACE" not in shard
            Settings.from_env({"WATCH_NAMESPACE_SELECTOR": shard["WATCH_NAMESPACE_SELECTOR"]})

    def test_namespace_reader_is_separate_and_read_only(
        self, control_plane: cluster.Cluster
    ) -> None:
        """The example adds one ClusterRole (list and watch namespaces, nothing else) bound to
        the zen-watcher ServiceAccount; the base RBAC grants no namespace access at all."""
        documents = built(control_plane, "manifests/examples/shards")
        roles = {
            doc["metadata"]["name"]: doc["rules"]
            for doc in documents
            if doc["kind"] == "ClusterRole"
        }
        assert [
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}
        ] == roles["zen-watcher-namespaces"]
        binding = next(
            doc
            for doc in documents
            if doc["kind"] == "ClusterRoleBinding"
            and doc["roleRef"]["name"] == "zen-watcher-namespaces"
        )
        assert [
            {"kind": "ServiceAccount", "name": "zen-watcher", "namespace": "zen-system"}
        ] == binding["subjects"]
        base = built(control_plane, "manifests")
        assert not any(
            "namespaces" in rule.get("resources", [])
            for doc in base
            if doc["kind"] in ("ClusterRole", "Role")
            for rule in doc["rules"]
        )


class TestWebhookAuthentication:
    @pytest.mark.parametrize("path", KUSTOMIZATIONS)
    def test_every_deployment_requires_a_credential(
        self, control_plane: cluster.Cluster, path: str
    ) -> None:
        """Every zen-watcher container reads the token from a Secret it cannot start without
        (no `optional`), and none opts into running open."""
        for document in built(control_plane, path):
            if document["kind"] != "Deployment":
                continue
            for container in document["spec"]["template"]["spec"]["containers"]:
                env = {item["name"]: item for item in container.get("env", [])}
                assert "WEBHOOK_ALLOW_UNAUTHENTICATED" not in env
                reference = env["WEBHOOK_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
                assert ("zen-watcher-webhook", "token") == (reference["name"], reference["key"])
                assert not reference.get("optional", False)


class TestNetworkPolicy:
    def test_admits_named_pods_and_single_addresses_only(
        self, control_plane: cluster.Cluster
    ) -> None:
        """No rule admits a whole namespace, a network range or everyone: namespace selectors
        come with a pod selector, address blocks are single addresses."""
        (policy,) = [
            doc for doc in built(control_plane, "manifests") if doc["kind"] == "NetworkPolicy"
        ]
        assert ["Ingress"] == policy["spec"]["policyTypes"]
        for rule in policy["spec"]["ingress"]:
            assert rule["from"]
            assert rule["ports"]
            for peer in rule["from"]:
                if "ipBlock" in peer:
                    assert peer["ipBlock"]["cidr"].endswith("/32")
                else:
                    assert peer["podSelector"]["matchLabels"]
                    assert peer["namespaceSelector"]["matchLabels"]

    def test_readme_command_sets_the_api_server_address(
        self, control_plane: cluster.Cluster
    ) -> None:
        """The README's patch replaces the API server rule's address and the API server accepts
        the result (the policy is applied for real in zen-system, then removed)."""
        policy = next(
            doc for doc in built(control_plane, "manifests") if doc["kind"] == "NetworkPolicy"
        )
        control_plane.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(policy))
        try:
            command = shlex.split(readme_command("apiserver-policy"))
            assert "kubectl" == command[0]
            control_plane.kubectl(*command[1:])
            patched = yaml.safe_load(
                control_plane.kubectl(
                    "get", "networkpolicy", "zen-watcher", "-n", "zen-system", "-o", "yaml"
                ).stdout
            )
        finally:
            control_plane.kubectl(
                "delete", "networkpolicy", "zen-watcher", "-n", "zen-system", "--ignore-not-found"
            )
        ingress = patched["spec"]["ingress"]
        assert [{"ipBlock": {"cidr": "172.18.0.2/32"}}] == ingress[1]["from"]
        assert [{"port": "webhooks", "protocol": "TCP"}] == ingress[1]["ports"]
        assert policy["spec"]["ingress"][0]["from"] == ingress[0]["from"]  # Falco's untouched


class TestFilterNamespaceExample:
    def test_grants_the_filter_configmap_there_and_nothing_else(
        self, control_plane: cluster.Cluster
    ) -> None:
        """Before the example the shipped ServiceAccount cannot read the filter ConfigMap in
        another namespace; after it, it can list and watch that one ConfigMap there (a real
        list too), and nothing more."""
        roles = built(control_plane, str(FILTER_NAMESPACE_EXAMPLE.relative_to(REPO_ROOT)))
        (namespace,) = {doc["metadata"]["namespace"] for doc in roles}
        control_plane.kubectl("create", "namespace", namespace, check=False)
        as_account = f"--as={SERVICE_ACCOUNT}"

        def can(verb: str, resource: str) -> str:
            return control_plane.kubectl(
                "auth", "can-i", verb, resource, "-n", namespace, as_account, check=False
            ).stdout.strip()

        assert "no" == can("watch", "configmaps/zen-watcher-filter")
        control_plane.kubectl("apply", "--server-side", "-k", str(FILTER_NAMESPACE_EXAMPLE))
        try:
            assert "yes" == can("watch", "configmaps/zen-watcher-filter")
            assert "yes" == can("list", "configmaps/zen-watcher-filter")
            for verb, resource in (
                ("get", "configmaps/zen-watcher-filter"),
                ("update", "configmaps/zen-watcher-filter"),
                ("list", "configmaps/other"),
                ("get", "secrets"),
            ):
                assert "no" == can(verb, resource), (verb, resource)
            listed = control_plane.kubectl(
                "get",
                "configmaps",
                "-n",
                namespace,
                "--field-selector=metadata.name=zen-watcher-filter",
                as_account,
            )
            assert 0 == listed.returncode
        finally:
            control_plane.kubectl(
                "delete", "-k", str(FILTER_NAMESPACE_EXAMPLE), "--ignore-not-found"
            )


class TestLeastPrivilege:
    @pytest.mark.parametrize(
        ("verb", "resource", "namespace"),
        [
            ("create", "observations.zen.kube-zen.io", "default"),
            ("patch", "observations.zen.kube-zen.io", "default"),
            ("delete", "observations.zen.kube-zen.io", "default"),
            ("watch", "policyreports.wgpolicyk8s.io", "default"),
            ("list", "clustervulnerabilityreports.aquasecurity.github.io", ""),
            ("update", "leases.coordination.k8s.io", "zen-system"),
            ("watch", "leases.coordination.k8s.io", "zen-system"),
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
            ("list", "leases.coordination.k8s.io", "zen-system"),
            ("watch", "leases.coordination.k8s.io", "default"),
            ("update", "policyreports.wgpolicyk8s.io", "default"),
            ("create", "pods", "default"),
            ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
            # Verbs the code does not use, on what it does use.
            ("update", "observations.zen.kube-zen.io", "default"),
            ("deletecollection", "observations.zen.kube-zen.io", "default"),
            ("get", "policyreports.wgpolicyk8s.io", "default"),
            # Namespaces only with the shards example's namespace-reader (a selector).
            ("list", "namespaces", ""),
        ],
    )
    def test_refused(
        self, control_plane: cluster.Cluster, verb: str, resource: str, namespace: str
    ) -> None:
        """What it must not do is refused: Secrets, writes outside Observations and its Lease."""
        assert "no" == self._can(control_plane, verb, resource, namespace)

    def test_namespace_reader_grants_list_and_watch_only(
        self, control_plane: cluster.Cluster
    ) -> None:
        """Bound for real: Namespaces may be listed and watched, not read one by one or
        changed, and nothing else is widened."""
        with namespaces.namespace_reader(control_plane):
            assert "yes" == self._can(control_plane, "list", "namespaces", "")
            assert "yes" == self._can(control_plane, "watch", "namespaces", "")
            for verb, resource in (("get", "namespaces"), ("patch", "namespaces")):
                assert "no" == self._can(control_plane, verb, resource, "")
            assert "no" == self._can(control_plane, "list", "secrets", "default")
        assert "no" == self._can(control_plane, "list", "namespaces", "")

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
