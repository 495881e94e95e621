"""Install the shipped manifests on the one-node cluster the way the README says, and look at
what runs: pods, the leader Lease, the Services, the daemon's metrics."""

from __future__ import annotations

import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import yaml

from tests.cluster.node import Node
from tests.harness.controlplane import cluster
from tests.harness.paths import REPO_ROOT, SHARED_FIXTURES

NAMESPACE = "zen-system"
DEPLOYMENT = "zen-watcher"
SELECTOR = "app.kubernetes.io/name=zen-watcher"
LEASE = "zen-watcher-leader-election"
MANIFESTS = REPO_ROOT / "manifests"


@dataclass
class Installed:
    """The shipped install, running: the Secrets the test made for it and how long it took."""

    node: Node
    secrets: dict[str, str]  # Secret name -> token value the Deployment reads from it
    apply_to_ready_seconds: float

    @property
    def kube(self) -> cluster.Cluster:
        """The same cluster as the other test suites see it (for their report helpers)."""
        assert self.node.control is not None
        return cluster.Cluster(
            workdir=self.node.workdir,
            kubectl_path=self.node.kubectl_path,
            kubeconfigs={"admin": self.node.kubeconfig()},
            local=self.node.control,
        )

    @property
    def webhook_token(self) -> str:
        return next(iter(self.secrets.values()), "")

    def service_url(self, service: str = "zen-watcher", port: int = 8080) -> str:
        ip = self.node.kubectl(
            "get", "service", service, "-n", NAMESPACE, "-o", "jsonpath={.spec.clusterIP}"
        ).stdout.strip()
        return f"http://{ip}:{port}"

    def pods(self) -> list[dict[str, Any]]:
        result = self.node.kubectl("get", "pods", "-n", NAMESPACE, "-l", SELECTOR, "-o", "json")
        items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
        return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]

    def ready_pods(self) -> list[dict[str, Any]]:
        return [pod for pod in self.pods() if is_ready(pod)]

    def leader(self) -> str:
        """The Lease's holder (a pod name), or "" when nobody holds it."""
        result = self.node.kubectl(
            "get", "lease", LEASE, "-n", NAMESPACE, "-o", "json", check=False
        )
        if result.returncode != 0:
            return ""
        return str(json.loads(result.stdout)["spec"].get("holderIdentity") or "")

    def metrics(self, pod_ip: str) -> str:
        with urllib.request.urlopen(f"http://{pod_ip}:9090/metrics", timeout=5) as response:
            text: str = response.read().decode()
            return text

    def wait_reachable(self, timeout: float = 60.0) -> None:
        """Until the webhook Service's ClusterIP accepts connections (kube-proxy has synced)."""
        host, port = self.service_url().removeprefix("http://").split(":")
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Until every Ready pod's write queue is empty (earlier tests' work is written)."""
        deadline = time.monotonic() + timeout
        while True:
            depths = [self._queue_depth(pod["status"]["podIP"]) for pod in self.ready_pods()]
            if depths and not any(depth is None or depth > 0 for depth in depths):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"write queues not empty after {timeout}s: {depths}")
            time.sleep(0.5)

    def _queue_depth(self, pod_ip: str) -> float | None:
        """The pod's write queue depth; None while it does not answer (a container restarting
        can be listed Ready for a moment)."""
        try:
            return sample(self.metrics(pod_ip), "zen_watcher_queue_depth")
        except OSError:
            return None

    def rollout(self, timeout: float = 240.0) -> None:
        self.node.kubectl(
            "rollout",
            "status",
            f"deployment/{DEPLOYMENT}",
            "-n",
            NAMESPACE,
            f"--timeout={int(timeout)}s",
            timeout=timeout + 10,
        )
        # The rollout is complete when the new pods are Ready; the old ones may still answer
        # 503 while they shut down. Tests start from pods that all serve.
        deadline = time.monotonic() + 90
        while self._terminating() and time.monotonic() < deadline:
            time.sleep(0.5)

    def _terminating(self) -> list[str]:
        result = self.node.kubectl("get", "pods", "-n", NAMESPACE, "-l", SELECTOR, "-o", "json")
        return [
            pod["metadata"]["name"]
            for pod in json.loads(result.stdout)["items"]
            if pod["metadata"].get("deletionTimestamp")
        ]


def install(node: Node) -> Installed:
    """`kubectl apply -k manifests/` as shipped, after the report CRDs (Kyverno's and
    trivy-operator's, as a cluster running them has) and whatever Secret the Deployment reads
    (found in the rendered manifests), each with a random token. Waits for the rollout and the
    Service; measures apply to rollout complete."""
    node.kubectl("apply", "--server-side", "-f", str(SHARED_FIXTURES / "crds"))
    documents = rendered(node)
    # As README's install section: the namespace first, so the Secret can go in before the
    # Deployment's first pod starts.
    for doc in documents:
        if doc["kind"] == "Namespace":
            node.kubectl("create", "namespace", doc["metadata"]["name"])
    made = {}
    for namespace, name, key in referenced_secrets(documents):
        token = secrets.token_urlsafe(24)
        node.kubectl(
            "create", "secret", "generic", name, "-n", namespace, f"--from-literal={key}={token}"
        )
        made[name] = token
    started = time.monotonic()
    node.kubectl("apply", "-k", str(MANIFESTS))
    installed = Installed(node=node, secrets=made, apply_to_ready_seconds=0.0)
    installed.rollout()
    installed.apply_to_ready_seconds = time.monotonic() - started
    installed.wait_reachable()
    return installed


def rendered(node: Node) -> list[dict[str, Any]]:
    """What `kubectl apply -k manifests/` applies (kubectl's own kustomize)."""
    result = node.kubectl("kustomize", str(MANIFESTS)).stdout
    return [doc for doc in yaml.safe_load_all(result) if doc]


def referenced_secrets(documents: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(namespace, name, key) of every Secret the workloads' env or volumes name."""
    found = []
    for doc in documents:
        if doc["kind"] not in {"Deployment", "StatefulSet", "DaemonSet"}:
            continue
        namespace = doc["metadata"].get("namespace", "default")
        spec = doc["spec"]["template"]["spec"]
        for container in spec.get("containers", []):
            for env in container.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    found.append((namespace, ref["name"], ref["key"]))
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                found.append((namespace, volume["secret"]["secretName"], "token"))
    return sorted(set(found))


def sample(metrics: str, name: str) -> float:
    """The sum of a metric's samples in a Prometheus text page (0 when absent)."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith((name + " ", name + "{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def post(url: str, body: bytes, token: str, timeout: float = 10.0) -> tuple[int, dict[str, str]]:
    """POST JSON; the status code and headers, also for 4xx/5xx answers."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)
