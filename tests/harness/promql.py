"""PromQL as the dashboard, alert and example tests read it: the metric names an expression
selects, and every sample name zen-watcher can expose."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, ProcessCollector

from zenwatcher.metrics import Metrics

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset"}
PROMQL_KEYWORDS |= {"bool", "and", "or", "unless"}
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords or labels)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text):
        called = text[match.end() :].lstrip().startswith("(")
        if match.group() not in PROMQL_KEYWORDS and not called:
            names.add(match.group())
    return names


def exposed_metric_names() -> set[str]:
    """Every sample name zen-watcher's registry can expose, plus Prometheus' own `up`."""
    registry = CollectorRegistry()
    Metrics(registry)
    ProcessCollector(registry=registry)
    names = {"up"}
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SAMPLE_SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names
