"""A PolicyReport in a namespace becomes Observations through the installed pod's informers;
fixing it resolves them (after the shipped REPORT_RESOLVE_GRACE_SECONDS, 30 s)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.cluster import deploy
from tests.harness import reports as fx
from tests.harness.polling import wait_for


@pytest.fixture(name="report_namespace")
def _report_namespace(installed: deploy.Installed) -> Iterator[str]:
    name = f"reports-{uuid.uuid4().hex[:8]}"
    installed.node.kubectl("create", "namespace", name)
    yield name
    installed.node.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_policy_report_to_observations_and_resolved(
    installed: deploy.Installed, report_namespace: str
) -> None:
    kube = installed.kube
    report = fx.placed(fx.load_fixture(fx.POLICY), report_namespace)
    names = fx.finding_names(report)
    assert names
    fx.apply(kube, report)
    wait_for(lambda: fx.phases(kube, report_namespace) == dict.fromkeys(names, "Open"), timeout=60)
    fx.apply(kube, fx.with_results(report, "pass"))
    wait_for(
        lambda: fx.phases(kube, report_namespace) == dict.fromkeys(names, "Resolved"),
        timeout=120,
    )
