"""The informer against an injected fault: a list answer without a resourceVersion.

A real API server always sends one, so the fault needs a fake client (a proxy in the way could
strip it). Without a version there is nothing to watch from; the informer must back off and
relist, not spin.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any, cast

from prometheus_client import CollectorRegistry

from zenwatcher.informers import informer
from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics
from zenwatcher.pacing import Backoff


class VersionlessLists:
    def __init__(self) -> None:
        self.lists = 0

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.lists += 1
        await asyncio.sleep(0)  # as a real call would: lets the test's timer run
        return {"metadata": {}, "items": []}


class Quiet:
    async def on_object(self, obj: dict[str, Any]) -> None:
        pass

    async def on_deleted(self, obj: dict[str, Any]) -> None:
        pass

    async def on_listed(self, present: frozenset[tuple[str, str]]) -> None:
        pass


async def test_a_list_without_resource_version_backs_off() -> None:
    fake = VersionlessLists()
    task = asyncio.create_task(
        informer.informer(
            client=cast("KubeClient", fake),
            path="/api/v1/configmaps",
            resource="configmaps",
            handler=Quiet(),
            metrics=Metrics(CollectorRegistry()),
            backoff_factory=functools.partial(Backoff, base=0.1, cap=0.1, jitter=0.0),
        )
    )
    await asyncio.sleep(0.35)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert 2 <= fake.lists <= 5  # one list per 0.1 s backoff, not a busy loop
