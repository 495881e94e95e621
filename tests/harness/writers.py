"""A Writer as the tests build one: no rate limit, a short TTL, an explicit retry budget."""

from __future__ import annotations

from typing import Any, cast

from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics
from zenwatcher.pacing import TokenBucket
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.writer import Writer


def make_writer(
    client: Any,
    metrics: Metrics,
    *,
    retry_for: float = 300.0,
    default_namespace: str = "zen-system",
) -> Writer:
    """`client` is ours, a fault-injecting subclass, a fake, or None where no call may go out."""
    return Writer(
        client=cast("KubeClient", client),
        accounting=Accounting(metrics),
        metrics=metrics,
        limiter=TokenBucket(rate=0, burst=1),
        ttl_seconds=3600,
        default_namespace=default_namespace,
        retry_for=retry_for,
    )
