"""EventIntake accounting: every event in exactly one bucket, even when a bug stops a request."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from zenwatcher.filters import rules
from zenwatcher.filters.state import FilterState
from zenwatcher.mapping import falco
from zenwatcher.mapping.rejection import Ignored, Skip
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.dedup import DedupCache
from zenwatcher.pipeline.intake import EventIntake
from zenwatcher.pipeline.jobs import WriteJob, job_name
from zenwatcher.scope import NamespaceScope


def alert(pod: str) -> dict[str, Any]:
    return {"rule": "Terminal shell", "priority": "Warning", "output_fields": {"k8s.pod.name": pod}}


def make_intake(
    map_event: Any, *, repeat_key: Any = None, filters: FilterState | None = None
) -> tuple[EventIntake, Metrics, list[WriteJob]]:
    metrics = Metrics(CollectorRegistry())
    queued: list[WriteJob] = []
    intake = EventIntake(
        source="falco",
        map_event=map_event,
        filters=filters or FilterState(),
        dedup=DedupCache(window_seconds=60, max_size=100),
        accounting=Accounting(metrics),
        enqueue=queued.append,
        default_namespace="zen-system",
        repeat_key=repeat_key,
    )
    return intake, metrics, queued


def counted(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, {"source": "falco", **labels})
    return 0.0 if value is None else value


def test_each_event_lands_in_one_bucket_per_request() -> None:
    intake, metrics, queued = make_intake(falco.map_falco_alert)
    tally = intake.process([alert("a"), alert("a"), alert("b"), {"rule": ""}, "text"])
    assert (tally.accepted, tally.deduplicated, tally.rejected) == (2, 1, 2)
    assert 2 == len(queued)
    assert 5 == counted(metrics, "zen_watcher_events_received_total")
    assert 1 == counted(metrics, "zen_watcher_events_total", bucket="deduplicated", reason="")
    assert 1 == counted(
        metrics, "zen_watcher_events_total", bucket="rejected", reason="missing_rule"
    )
    assert 1 == counted(
        metrics, "zen_watcher_events_total", bucket="rejected", reason="not_an_object"
    )


def test_a_bug_costs_only_its_own_event() -> None:
    """A mapper that raises something unexpected (a bug) on the third event: that event is
    rejected as internal_error, the others are processed, every event is in one bucket."""

    def buggy(event: Any) -> Any:
        if event == "boom":
            raise OverflowError("date value out of range")
        return falco.map_falco_alert(event)

    intake, metrics, queued = make_intake(buggy)
    tally = intake.process([alert("a"), alert("a"), "boom", alert("c")])
    assert (tally.accepted, tally.deduplicated, tally.rejected) == (2, 1, 1)
    assert ["event 2: internal error"] == tally.errors
    assert 2 == len(queued)
    assert 4 == counted(metrics, "zen_watcher_events_received_total")
    assert 1 == counted(metrics, "zen_watcher_events_total", bucket="deduplicated", reason="")
    assert 1 == counted(
        metrics, "zen_watcher_events_total", bucket="rejected", reason="internal_error"
    )


def test_a_time_that_overflows_in_utc_is_not_an_error() -> None:
    """A Falco time that parses but has no UTC form is ignored (arrival time is used)."""
    intake, _, queued = make_intake(falco.map_falco_alert)
    tally = intake.process([{**alert("a"), "time": "0001-01-01T00:00:00+01:00"}])
    assert (tally.accepted, tally.rejected) == (1, 0)
    assert 1 == len(queued)


async def test_a_selector_scope_is_checked_as_it_is_now() -> None:
    """With WATCH_NAMESPACE_SELECTOR, a finding's namespace is checked against the scope at
    that moment: in while the namespace matches, out_of_scope once it no longer does."""
    scope = NamespaceScope(pod_namespace="zen-system", selector="shard=a")
    metrics = Metrics(CollectorRegistry())
    queued: list[WriteJob] = []
    intake = EventIntake(
        source="falco",
        map_event=falco.map_falco_alert,
        filters=FilterState(),
        dedup=DedupCache(window_seconds=60, max_size=100),
        accounting=Accounting(metrics),
        enqueue=queued.append,
        default_namespace="zen-system",
        in_scope=scope.admits,
    )

    def in_namespace(pod: str, namespace: str) -> dict[str, Any]:
        event = alert(pod)
        event["output_fields"]["k8s.ns.name"] = namespace
        return event

    await scope.on_object({"metadata": {"name": "apps"}})
    assert 1 == intake.process([in_namespace("a", "apps")]).accepted
    await scope.on_deleted({"metadata": {"name": "apps"}})
    tally = intake.process([in_namespace("b", "apps"), alert("no-namespace")])
    assert (1, 1) == (tally.filtered, tally.accepted)
    assert 1 == counted(
        metrics, "zen_watcher_events_total", bucket="filtered", reason="out_of_scope"
    )


class CountingMapper:
    """map_falco_alert, counting its calls: what the repeat path saves is a mapping."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, event: Any) -> Any:
        self.calls += 1
        return falco.map_falco_alert(event)


def test_repeats_are_counted_without_mapping_and_tally_as_the_full_path() -> None:
    events = [alert("a"), alert("a"), alert("b"), {"rule": ""}, "text", alert("a"), alert("b")]
    with_key = CountingMapper()
    fast, fast_metrics, fast_queued = make_intake(with_key, repeat_key=falco.falco_repeat_key)
    full, full_metrics, full_queued = make_intake(falco.map_falco_alert)
    fast_tally, full_tally = fast.process(events), full.process(events)
    assert fast_tally.as_dict() == full_tally.as_dict()
    assert (2, 3, 2) == (fast_tally.accepted, fast_tally.deduplicated, fast_tally.rejected)
    assert [job_name(job) for job in fast_queued] == [job_name(job) for job in full_queued]
    assert 4 == with_key.calls  # the two firsts and the two malformed events
    for bucket in ("deduplicated", "rejected"):
        assert counted(fast_metrics, "zen_watcher_events_total", bucket=bucket) == counted(
            full_metrics, "zen_watcher_events_total", bucket=bucket
        )


def test_with_a_filter_for_the_source_every_event_is_mapped_and_judged() -> None:
    """A repeat of a finding a filter now drops is filtered, not deduplicated: with any filter
    for the source the repeat path is off."""
    state = FilterState()
    mapper = CountingMapper()
    intake, metrics, _ = make_intake(mapper, repeat_key=falco.falco_repeat_key, filters=state)
    assert 1 == intake.process([alert("a")]).accepted
    state.config = rules.parse_filter_config(b'{"sources": {"falco": {"minSeverity": "HIGH"}}}')
    tally = intake.process([alert("a")])
    assert (0, 1) == (tally.deduplicated, tally.filtered)
    assert 2 == mapper.calls
    assert 1 == counted(
        metrics, "zen_watcher_events_total", bucket="filtered", reason="min_severity"
    )
    state.config = rules.FilterConfig.empty()  # the filter removed: repeats skip mapping again
    assert 1 == intake.process([alert("a")]).deduplicated
    assert 2 == mapper.calls


def test_a_returned_skip_counts_as_a_raised_ignored() -> None:
    """A mapper may return a Skip (the audit mapper does, for most events) or raise Ignored:
    either is filtered{reason}, nothing is queued, nothing is rejected."""

    def mapper(event: Any) -> Any:
        if event == "skip":
            return Skip("no_rule", lambda: "no rule matches")
        raise Ignored("no_rule", "no rule matches")

    intake, metrics, queued = make_intake(mapper)
    tally = intake.process(["skip", "raise", "skip"])
    assert (tally.accepted, tally.filtered, tally.rejected) == (0, 3, 0)
    assert [] == queued
    assert 3 == counted(metrics, "zen_watcher_events_total", bucket="filtered", reason="no_rule")
