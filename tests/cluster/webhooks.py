"""Falco alerts sent to the installed webhook Service as the README's curl line sends them, and
the Observations they become."""

from __future__ import annotations

import json
import subprocess

from tests.cluster import deploy


def falco_alert(namespace: str, pod: str) -> dict[str, object]:
    """A critical Falco alert: a shell spawned in `namespace`/`pod`."""
    return {
        "rule": "Terminal shell in container",
        "priority": "Critical",
        "output": "A shell was spawned in a container",
        "time": "2026-01-01T00:00:00Z",
        "output_fields": {
            "k8s.ns.name": namespace,
            "k8s.pod.name": pod,
            "container.id": "abc123",
            "proc.name": "bash",
        },
    }


def curl_falco(installed: deploy.Installed, alert: dict[str, object]) -> str:
    """The README's curl line, sent to the webhook Service's ClusterIP; the HTTP status."""
    result = subprocess.run(
        [
            "curl",
            "-sS",
            # A pod shutting down answers 503 with Retry-After: retry, as a client should.
            "--retry",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            installed.service_url() + "/falco/webhook",
            "-H",
            f"Authorization: Bearer {installed.webhook_token}",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps(alert),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def observations(installed: deploy.Installed, namespace: str) -> list[dict[str, object]]:
    result = installed.node.kubectl("get", "observations", "-n", namespace, "-o", "json")
    items: list[dict[str, object]] = json.loads(result.stdout)["items"]
    return items
