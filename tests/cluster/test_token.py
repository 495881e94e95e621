"""The daemon authenticates with the projected service-account token of its pod (in-cluster
configuration) and keeps working after the kubelet rotates it.

The API server issues pod tokens for an hour at least, so the test shortens the lifetime the
way a user can: the Deployment mounts its own projected token with the shortest lifetime the
API allows (600 s) in place of the automatic one. The kubelet replaces it at 80% of that; the
old one expires at 600 s, and the daemon (which re-reads the file every minute) must then be
writing with the new one. Takes about eleven minutes; undone afterwards (`rollout undo`).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.cluster import deploy
from tests.cluster.conftest import REPORT
from tests.cluster.webhooks import curl_falco, falco_alert, observations
from tests.harness.polling import wait_for

LIFETIME = 600  # the minimum a TokenRequest may ask for
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

SHORT_LIVED_TOKEN = [
    {"op": "add", "path": "/spec/template/spec/automountServiceAccountToken", "value": False},
    {
        "op": "add",
        "path": "/spec/template/spec/volumes",
        "value": [
            {
                "name": "sa-token",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": LIFETIME}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "namespace",
                                        "fieldRef": {"fieldPath": "metadata.namespace"},
                                    }
                                ]
                            }
                        },
                    ]
                },
            }
        ],
    },
    {
        "op": "add",
        "path": "/spec/template/spec/containers/0/volumeMounts",
        "value": [{"name": "sa-token", "mountPath": TOKEN_DIR, "readOnly": True}],
    },
]


@pytest.fixture(name="short_lived")
def _short_lived(installed: deploy.Installed) -> Iterator[deploy.Installed]:
    installed.node.kubectl(
        "patch",
        "deployment",
        deploy.DEPLOYMENT,
        "-n",
        deploy.NAMESPACE,
        "--type=json",
        "-p",
        json.dumps(SHORT_LIVED_TOKEN),
    )
    installed.rollout()
    wait_for(lambda: len(installed.ready_pods()) == 1, timeout=120)
    yield installed
    installed.node.kubectl(
        "rollout", "undo", f"deployment/{deploy.DEPLOYMENT}", "-n", deploy.NAMESPACE
    )
    installed.rollout()


def token_claims(installed: deploy.Installed, pod: str) -> dict[str, object]:
    token = installed.node.kubectl(
        "exec", pod, "-n", deploy.NAMESPACE, "--", "cat", f"{TOKEN_DIR}/token"
    ).stdout.strip()
    payload = token.split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return claims


def refused_calls(logs: str) -> list[str]:
    """Log lines that report an API call answered 401 (an ApiError reads "401 Unauthorized:
    ..."), in an error message or a traceback. Matched on those fields, not the whole text:
    timestamps and resourceVersions contain "401" too."""
    refused = []
    for line in logs.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        error = f"{event.get('error', '')} {event.get('exception', '')}"
        if "401 " in error or "Unauthorized" in error:
            refused.append(line)
    return refused


def test_keeps_working_after_the_token_rotates(short_lived: deploy.Installed) -> None:
    pod = short_lived.ready_pods()[0]["metadata"]["name"]
    first = token_claims(short_lived, pod)
    assert LIFETIME == int(str(first["exp"])) - int(str(first["iat"]))
    started = time.monotonic()
    rotated = wait_for(
        lambda: (claims := token_claims(short_lived, pod))["iat"] != first["iat"] and claims,
        timeout=LIFETIME,
        interval=10,
    )
    REPORT["projected token rotated by the kubelet after"] = f"{time.monotonic() - started:.0f} s"
    assert int(str(rotated["iat"])) > int(str(first["iat"]))
    # Past the first token's expiry (plus the daemon's minute between re-reads), only the new
    # one is accepted: a write now proves the daemon uses it.
    time.sleep(max(0.0, int(str(first["exp"])) - time.time()) + 5)
    namespace = f"token-{uuid.uuid4().hex[:8]}"
    short_lived.node.kubectl("create", "namespace", namespace)
    try:
        assert "200" == curl_falco(short_lived, falco_alert(namespace, "after-rotation"))
        wait_for(lambda: observations(short_lived, namespace), timeout=30)
    finally:
        short_lived.node.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    logs = short_lived.node.kubectl("logs", pod, "-n", deploy.NAMESPACE).stdout
    assert [] == refused_calls(logs)
    assert 0 == short_lived.ready_pods()[0]["status"]["containerStatuses"][0]["restartCount"]
