"""`kubectl rollout restart` under steady load through the Service: every request is answered
2xx, or 503 with Retry-After (which the client retries); every accepted alert is in the API."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.cluster import deploy
from tests.cluster.conftest import REPORT
from tests.cluster.load import SteadyLoad
from tests.harness.polling import wait_for


@pytest.fixture(name="load_namespace")
def _load_namespace(installed: deploy.Installed) -> Iterator[str]:
    name = f"rollout-{uuid.uuid4().hex[:8]}"
    installed.node.kubectl("create", "namespace", name)
    yield name
    installed.node.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_rolling_restart_under_load(installed: deploy.Installed, load_namespace: str) -> None:
    url = installed.service_url() + "/falco/webhook"
    installed.wait_idle()
    before = {pod["metadata"]["name"] for pod in installed.pods()}
    with SteadyLoad(url, installed.webhook_token, load_namespace, interval=0.05) as load:
        time.sleep(2)
        installed.node.kubectl(
            "rollout", "restart", f"deployment/{deploy.DEPLOYMENT}", "-n", deploy.NAMESPACE
        )
        installed.rollout()
        wait_for(lambda: not before & {p["metadata"]["name"] for p in installed.pods()}, timeout=90)
        time.sleep(2)
    expected = {f"load-{index}" for index in load.accepted}
    assert expected, load.outcomes
    with contextlib.suppress(AssertionError):  # the count of lost ones is reported below
        wait_for(lambda: expected <= stored(installed, load_namespace), timeout=60)
    lost = expected - stored(installed, load_namespace)
    REPORT["rolling restart under load"] = (
        f"{len(expected)} alerts accepted, {len(lost)} lost; answers {dict(load.outcomes)}"
    )
    assert set() == lost
    assert set(load.outcomes) <= {"200", "503"}, load.outcomes


def stored(installed: deploy.Installed, namespace: str) -> set[str]:
    result = installed.node.kubectl("get", "observations", "-n", namespace, "-o", "json")
    return {item["spec"]["resource"]["name"] for item in json.loads(result.stdout)["items"]}
