"""Prometheus counters for one event loop: plain numbers behind a registered collector.

prometheus_client's Counter takes a lock and checks its state on every increment, and the
webhook path increments several per request. Everything in the daemon increments on its one
event-loop thread, and /metrics is served on that loop too, so a plain addition is enough.
The exposition is prometheus_client's own (`<name>_total` samples, HELP and TYPE), without the
`_created` series.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily


class CounterChild:
    """One label set's count."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError(f"a counter only goes up, got an increment of {amount}")
        self.value += amount


class LoopCounter:
    """A labelled counter family registered on `registry`; `labels(...)` gives its children."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        registry: CollectorRegistry,
    ) -> None:
        self._name = name.removesuffix("_total")
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], CounterChild] = {}
        registry.register(self)

    def labels(self, *values: object, **by_name: object) -> CounterChild:
        """The child for these label values, given in order or by name (created at 0)."""
        if by_name:
            if values or set(by_name) != set(self._labelnames):
                raise ValueError(f"{self._name} takes the labels {self._labelnames}")
            values = tuple(by_name[name] for name in self._labelnames)
        if len(values) != len(self._labelnames):
            raise ValueError(f"{self._name} takes the labels {self._labelnames}, got {values}")
        key = tuple(str(value) for value in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = CounterChild()
        return child

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in self._children.items():
            family.add_metric(values, child.value)
        yield family

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
