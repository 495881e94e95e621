"""The elector refuses timings client-go's NewLeaderElector refuses, with the same factor."""

from __future__ import annotations

from typing import cast

import pytest
from prometheus_client import CollectorRegistry

from zenwatcher.election.elector import LeaderElector
from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics


def elector(lease: float, renew: float, retry: float) -> LeaderElector:
    return LeaderElector(
        client=cast("KubeClient", None),  # never called: construction only
        namespace="zen-system",
        name="zen-watcher-leader",
        identity="pod-a",
        lease_duration=lease,
        renew_deadline=renew,
        retry_period=retry,
        metrics=Metrics(CollectorRegistry()),
    )


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "message"),
    [
        (10, 10, 2, "must exceed renew_deadline"),
        (15, 2.4, 2, "must exceed retry_period \\* 1.2"),  # 2.4 == 1.2 x 2: refused, as client-go
        (15, 2.2, 2, "must exceed retry_period \\* 1.2"),
        (0.5, 0.2, 0.1, "at least 1 s"),
    ],
)
def test_refused(lease: float, renew: float, retry: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        elector(lease, renew, retry)


def test_defaults_accepted() -> None:
    elector(15, 10, 2)
    elector(15, 2.5, 2)
