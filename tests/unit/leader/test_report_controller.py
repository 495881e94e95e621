"""ReportController's start of term against an injected fault: a list that fails half-way."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from zenwatcher.filters.state import FilterState
from zenwatcher.kube import errors
from zenwatcher.kube.client import KubeClient
from zenwatcher.leader.context import LeaderContext
from zenwatcher.leader.report_controller import ReportController
from zenwatcher.mapping.reports import dispatch, kinds
from zenwatcher.metrics import Metrics
from zenwatcher.observation import LABEL_ORIGIN, Phase, existing_from
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.jobs import WriteJob
from zenwatcher.settings import Settings


def observation(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "a", "labels": {LABEL_ORIGIN: "o"}},
        "spec": {"source": "kyverno"},
        "status": {"phase": "Open"},
    }


class ListFailingHalfWay:
    """A fake API (the fault cannot be timed on a real server): the first list returns a page
    naming `gone` and then loses its connection; `gone` is deleted meanwhile, so the retried
    list is empty."""

    def __init__(self) -> None:
        self.calls = 0

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            return {"metadata": {"continue": "more"}, "items": [observation("gone")]}
        if self.calls == 2:
            raise errors.TransportError("connection reset")
        return {"metadata": {}, "items": []}


async def test_a_failed_load_leaves_nothing_behind() -> None:
    """Only a complete list counts: an Observation seen by the failed attempt only is not
    believed to exist (reconciliation would otherwise never recreate it)."""
    fake = ListFailingHalfWay()
    queue: asyncio.Queue[WriteJob] = asyncio.Queue()
    metrics = Metrics(CollectorRegistry())
    controller = ReportController(
        context=LeaderContext(
            client=cast("KubeClient", fake),
            settings=Settings.from_env({}),
            queue=queue,
            filters=FilterState(),
            accounting=Accounting(metrics),
            metrics=metrics,
        )
    )
    await controller._load_existing(())
    assert 3 == fake.calls
    assert 0 == len(controller._ledger)


async def test_a_mapping_bug_costs_only_its_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """A report the mapper fails on unexpectedly (an injected fault: no real report is known to
    do it) is counted as rejected{internal_error} and skipped; the informer is not ended."""
    metrics = Metrics(CollectorRegistry())
    queue: asyncio.Queue[WriteJob] = asyncio.Queue()
    controller = ReportController(
        context=LeaderContext(
            client=cast("KubeClient", ListFailingHalfWay()),
            settings=Settings.from_env({}),
            queue=queue,
            filters=FilterState(),
            accounting=Accounting(metrics),
            metrics=metrics,
        )
    )

    def broken(report: Any) -> Any:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(dispatch, "map_report", broken)
    kind = kinds.REPORT_KINDS[0]
    await controller.report_changed(kind, (kind.kind, "a"), {"metadata": {"name": "r"}})

    labels = {"source": "kyverno", "bucket": "rejected", "reason": "internal_error"}
    assert 1 == metrics.registry.get_sample_value("zen_watcher_events_total", labels)
    assert queue.empty()


def test_only_a_written_open_phase_counts_as_open() -> None:
    """An Observation whose status was never written (its term ended between the create and
    the status) is not Open to the ledger, so the next report event opens it again."""
    bare = observation("half-written")
    del bare["status"]
    assert Phase.OPEN == existing_from(observation("open"))[1].phase
    assert Phase.OPEN != existing_from(bare)[1].phase


async def test_a_namespace_entering_as_the_term_ends_is_left_to_the_next_term() -> None:
    """The scope can change while the term's task group shuts down (the Namespace informer runs
    outside the term): the change is not started in the dying group, and the scope watcher that
    delivered it gets no error. (A failing task stands in for the term's end.)"""
    metrics = Metrics(CollectorRegistry())
    controller = ReportController(
        context=LeaderContext(
            client=cast("KubeClient", ListFailingHalfWay()),
            settings=Settings.from_env({}),
            queue=asyncio.Queue(),
            filters=FilterState(),
            accounting=Accounting(metrics),
            metrics=metrics,
        )
    )

    async def term_ends() -> None:
        raise ValueError("the term ends")

    async def scope_change_while_stopping() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            controller.namespace_entered("late")

    async def term() -> None:
        async with asyncio.TaskGroup() as group:
            controller._group = group
            group.create_task(scope_change_while_stopping())
            group.create_task(term_ends())
            await asyncio.Event().wait()

    with pytest.raises(ExceptionGroup) as raised:
        await term()
    assert [ValueError] == [type(error) for error in raised.value.exceptions]
    assert "late" not in controller._namespaces
    assert {} == controller._entering
