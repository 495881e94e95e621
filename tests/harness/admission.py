"""An admission policy that refuses marked Observations: the API server's own answers (422,
403) to writes the daemon makes, for the tests that need a write refused."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import yaml

from tests.harness.controlplane import cluster
from tests.harness.payloads import unique_alert
from tests.harness.polling import wait_for
from zenwatcher.mapping import falco
from zenwatcher.observation import to_observation

# Alerts with these message prefixes are refused by `refusing_policy`.
REFUSE_INVALID = "zen-refuse-invalid"  # 422: a final failure at once
REFUSE_FORBIDDEN = "zen-refuse-forbidden"  # 403: retried for a while (RBAC warm-up grace)


@contextlib.contextmanager
def refusing_policy(control_plane: cluster.Cluster, namespace: str) -> Iterator[None]:
    """A ValidatingAdmissionPolicy that refuses Observations in `namespace` whose message
    starts with a marker: 422 for REFUSE_INVALID, 403 for REFUSE_FORBIDDEN."""
    name = f"zen-dashboard-{namespace}"
    documents = refusing_policy_documents(name, namespace)
    control_plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    try:
        wait_for(lambda: policy_refuses(control_plane, namespace), timeout=30)
        yield
    finally:
        for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
            control_plane.kubectl("delete", kind, name, "--wait=false", check=False)


def refusing_policy_documents(name: str, namespace: str) -> list[dict[str, Any]]:
    def refuse(marker: str, reason: str) -> dict[str, str]:
        return {
            "expression": f"!has(object.spec.message) || !object.spec.message.startsWith('{marker}')",
            "reason": reason,
            "message": f"refused by the dashboard test ({marker})",
        }

    rules = [
        {
            "apiGroups": ["zen.kube-zen.io"],
            "apiVersions": ["*"],
            "operations": ["CREATE"],
            "resources": ["observations"],
        }
    ]
    api_version = "admissionregistration.k8s.io/v1"
    policy = {
        "apiVersion": api_version,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": rules},
            "validations": [
                refuse(REFUSE_INVALID, "Invalid"),
                refuse(REFUSE_FORBIDDEN, "Forbidden"),
            ],
        },
    }
    binding = {
        "apiVersion": api_version,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    return [policy, binding]


def refused_alert(index: int, namespace: str, marker: str) -> dict[str, Any]:
    alert = unique_alert(index, namespace)
    alert["output"] = f"{marker}: shell in pod-{index}"
    return alert


def policy_refuses(control_plane: cluster.Cluster, namespace: str) -> bool:
    """True once a server-side dry-run create of a marked Observation is denied."""
    finding = falco.map_falco_alert(refused_alert(0, namespace, REFUSE_INVALID))
    body = to_observation(finding, namespace=namespace, now=datetime.now(UTC), ttl_seconds=3600)
    result = control_plane.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=orjson.dumps(body).decode(), check=False
    )
    return 0 != result.returncode and REFUSE_INVALID in result.stderr
