"""The cluster a test session runs against: the local control plane, or one given by kubeconfig.

Either way it ends up with our CRD, the upstream report CRDs from shared/fixtures, the
`zen-system` namespace and the shipped RBAC, with the `zen-watcher` user bound to exactly the
shipped ClusterRole and Role (so every test exercises the RBAC users install).
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.harness.controlplane import controlplane
from tests.harness.paths import REPO_ROOT, SHARED_FIXTURES

WATCHER_USER = controlplane.WATCHER_USER
SYSTEM_NAMESPACE = "zen-system"


class Cluster:
    """What tests use of a cluster; `local` is None when running against an external one."""

    def __init__(
        self,
        *,
        workdir: Path,
        kubectl_path: Path,
        kubeconfigs: dict[str, Path],
        local: controlplane.ControlPlane | None,
    ) -> None:
        self.workdir = workdir
        self.kubectl_path = kubectl_path
        self._kubeconfigs = kubeconfigs
        self.local = local

    def kubeconfig(self, user: str = "admin") -> Path:
        return self._kubeconfigs[user]

    def kubectl(
        self, *args: str, user: str = "admin", check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as `user` ("admin" or "zen-watcher")."""
        result = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig(user)}", *args],
            capture_output=True,
            text=True,
            input=stdin,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise controlplane.ControlPlaneError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}"
            )
        return result

    def server_version(self) -> dict[str, Any]:
        result = self.kubectl("get", "--raw", "/version")
        document: dict[str, Any] = yaml.safe_load(result.stdout)
        return document

    def require_local(self) -> controlplane.ControlPlane:
        """The local control plane; tests that restart or compact it need one."""
        if self.local is None:
            import pytest

            pytest.skip("needs the local control plane (restart/compact), not ZEN_TEST_KUBECONFIG")
        return self.local

    def grant_watcher_role(self, namespace: str) -> None:
        """The shipped namespaced Role (Leases, the filter ConfigMap) and its binding to the
        zen-watcher user in `namespace`, as if zen-watcher were installed there."""
        documents = list(yaml.safe_load_all((REPO_ROOT / "manifests/base/rbac.yaml").read_text()))
        role = next(doc for doc in documents if doc["kind"] == "Role")
        role["metadata"]["namespace"] = namespace
        binding = _role_binding(namespace)
        self.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all([role, binding]))

    def log_tails(self) -> str:
        return self.local.log_tails() if self.local else ""


@contextlib.contextmanager
def session_cluster(workdir: Path) -> Iterator[Cluster]:
    """Start (or attach to) a cluster, prepare it, and stop what was started."""
    external = os.environ.get("ZEN_TEST_KUBECONFIG")
    if external:
        running = _external_cluster(workdir, Path(external))
        prepare(running)
        yield running
        return
    plane = controlplane.ControlPlane(workdir=workdir, bin_dir=controlplane.build_binaries())
    try:
        plane.start()
        running = Cluster(
            workdir=workdir,
            kubectl_path=plane.bin_dir / "kubectl",
            kubeconfigs={
                "admin": plane.kubeconfig("admin"),
                WATCHER_USER: plane.kubeconfig(WATCHER_USER),
            },
            local=plane,
        )
        prepare(running)
        yield running
    finally:
        plane.stop()


def prepare(running: Cluster) -> None:
    """CRDs, the system namespace and the shipped RBAC bound to the zen-watcher user."""
    crds = [REPO_ROOT / "manifests/crds/observations.yaml", SHARED_FIXTURES / "crds"]
    for path in crds:
        running.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    # A busy machine can take a while to establish a dozen CRDs: wait, and try again once.
    established = ("wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")
    if running.kubectl(*established, check=False).returncode != 0:
        running.kubectl(*established)
    running.kubectl(
        "apply", "--server-side", "-f", str(REPO_ROOT / "manifests/base/namespace.yaml")
    )
    running.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "manifests/base/rbac.yaml"))
    running.kubectl("apply", "--server-side", "-f", "-", stdin=_user_bindings())


def _user_bindings() -> str:
    """Bind the shipped ClusterRole and Role to the `zen-watcher` user too (static token)."""
    subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": WATCHER_USER}
    documents = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "zen-watcher-test-user"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "zen-watcher",
            },
            "subjects": [subject],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "zen-watcher-test-user", "namespace": SYSTEM_NAMESPACE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "zen-watcher",
            },
            "subjects": [subject],
        },
    ]
    return yaml.safe_dump_all(documents)


def _role_binding(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "zen-watcher-test-user", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "zen-watcher"},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": WATCHER_USER}
        ],
    }


def _external_cluster(workdir: Path, kubeconfig: Path) -> Cluster:
    """Attach to a cluster by kubeconfig; the restricted user is the shipped ServiceAccount."""
    kubectl = Path(os.environ.get("ZEN_TEST_KUBECTL", "kubectl"))
    running = Cluster(
        workdir=workdir,
        kubectl_path=kubectl,
        kubeconfigs={"admin": kubeconfig, WATCHER_USER: kubeconfig},
        local=None,
    )
    prepare(running)
    token = running.kubectl(
        "create", "token", "zen-watcher", "-n", SYSTEM_NAMESPACE, "--duration=2h"
    ).stdout.strip()
    admin = yaml.safe_load(kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster_entry = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    restricted = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster_entry],
        "users": [{"name": WATCHER_USER, "user": {"token": token}}],
        "contexts": [
            {
                "name": WATCHER_USER,
                "context": {"cluster": cluster_entry["name"], "user": WATCHER_USER},
            }
        ],
        "current-context": WATCHER_USER,
    }
    path = workdir / "kubeconfig-zen-watcher"
    path.write_text(yaml.safe_dump(restricted))
    running._kubeconfigs[WATCHER_USER] = path
    return running


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
