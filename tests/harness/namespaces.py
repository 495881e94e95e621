"""Namespaces for WATCH_NAMESPACE_SELECTOR tests: the shipped namespace-reader RBAC granted to
the zen-watcher user for a while, and labels set and changed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import yaml

from tests.harness.controlplane import cluster
from tests.harness.paths import REPO_ROOT
from zenwatcher.mapping.reports.kinds import REPORT_KINDS

NAMESPACE_READER = REPO_ROOT / "manifests/examples/shards/namespace-reader.yaml"
_CLEANED = ",".join(
    [f"{kind.plural}.{kind.group}" for kind in REPORT_KINDS if kind.namespaced]
    + ["observations.zen.kube-zen.io"]
)


@contextlib.contextmanager
def namespace_reader(control_plane: cluster.Cluster) -> Iterator[None]:
    """The shards example's namespace-reader ClusterRole, bound to the zen-watcher user (the
    example binds the ServiceAccount) until the block ends: other tests check that the base
    RBAC alone cannot read Namespaces."""
    documents: list[dict[str, Any]] = [
        doc for doc in yaml.safe_load_all(NAMESPACE_READER.read_text()) if doc
    ]
    role = next(doc for doc in documents if doc["kind"] == "ClusterRole")
    binding = next(doc for doc in documents if doc["kind"] == "ClusterRoleBinding")
    binding["metadata"]["name"] = "zen-watcher-namespaces-test-user"
    binding["subjects"] = [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": cluster.WATCHER_USER}
    ]
    text = yaml.safe_dump_all([role, binding])
    control_plane.kubectl("apply", "--server-side", "-f", "-", stdin=text)
    try:
        yield
    finally:
        control_plane.kubectl("delete", "-f", "-", "--ignore-not-found", stdin=text)


def label(control_plane: cluster.Cluster, namespace: str, key: str, value: str | None) -> None:
    """Set `key` on the namespace to `value`, or remove it (None)."""
    change = f"{key}-" if value is None else f"{key}={value}"
    control_plane.kubectl("label", "namespace", namespace, change, "--overwrite")


def create(control_plane: cluster.Cluster, name: str, **labels: str) -> None:
    control_plane.kubectl("create", "namespace", name)
    for key, value in labels.items():
        label(control_plane, name, key, value)


def remove(control_plane: cluster.Cluster, name: str) -> None:
    """Reports and Observations first (no namespace controller runs on the local control
    plane, so a deleted namespace would keep them for other tests' informers to find)."""
    control_plane.kubectl("delete", _CLEANED, "--all", "-n", name, "--wait=false", check=False)
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
