"""Unit tests for zenwatcher.metrics.counters: what Prometheus scrapes, and misuse refused."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from zenwatcher.metrics.counters import LoopCounter


def family(registry: CollectorRegistry) -> LoopCounter:
    return LoopCounter(
        "demo_events_total", "Events by source.", ["source", "bucket"], registry=registry
    )


def test_exposition_is_prometheus_counter_text() -> None:
    registry = CollectorRegistry()
    counter = family(registry)
    counter.labels("falco", "created").inc()
    counter.labels(source="falco", bucket="created").inc(2)
    counter.labels("audit", "filtered")
    assert generate_latest(registry).decode().splitlines() == [
        "# HELP demo_events_total Events by source.",
        "# TYPE demo_events_total counter",
        'demo_events_total{bucket="created",source="falco"} 3.0',
        'demo_events_total{bucket="filtered",source="audit"} 0.0',
    ]
    assert 3.0 == registry.get_sample_value(
        "demo_events_total", {"source": "falco", "bucket": "created"}
    )


def test_same_labels_same_child() -> None:
    counter = family(CollectorRegistry())
    assert counter.labels("a", "b") is counter.labels(source="a", bucket="b")


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("falco",), {}), (("a", "b", "c"), {}), ((), {"source": "a"}), (("a",), {"bucket": "b"})],
)
def test_wrong_labels_are_refused(args: tuple[str, ...], kwargs: dict[str, str]) -> None:
    counter = family(CollectorRegistry())
    with pytest.raises(ValueError, match="takes the labels"):
        counter.labels(*args, **kwargs)


def test_a_counter_only_goes_up() -> None:
    child = family(CollectorRegistry()).labels("a", "b")
    with pytest.raises(ValueError, match="only goes up"):
        child.inc(-1)
    assert 0.0 == child.value


def test_a_name_registers_once() -> None:
    registry = CollectorRegistry()
    family(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        family(registry)
