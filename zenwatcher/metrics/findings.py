"""The findings themselves as metrics: new findings by rule (capped), and the findings that exist.

`FindingsByRule` counts each new finding (an Observation created) once, under its source,
severity and rule, and in `detailed` mode its namespace. Rules and namespaces are unbounded
(a noisy cluster has thousands), so the family holds at most `max_series` label sets; a finding
whose label set would be one more is counted under `rule="_overflow"` (and `namespace`
`"_overflow"`), one series per source and severity. Mode `off` exposes nothing.

`CurrentFindings` is a gauge family whose values are set as a whole by the leader, which derives
them from the Observations themselves; on a follower it is empty, so a sum over pods is right.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from zenwatcher.finding import Finding

OVERFLOW = "_overflow"
MAX_RULE_CHARS = 128  # a rule label longer than this is clipped: a name, not a message
DETECTED_FAMILY = "zen_watcher_findings_detected"
CURRENT_FAMILY = "zen_watcher_findings"
CURRENT_LABELS = ("source", "severity", "namespace", "phase")
CurrentKey = tuple[str, str, str, str]  # CURRENT_LABELS' values


class FindingsMode(enum.StrEnum):
    """FINDINGS_METRICS: which labels the per-rule counter carries."""

    OFF = "off"
    SIMPLE = "simple"  # source, severity, rule (a Kyverno policy, not policy/rule)
    DETAILED = "detailed"  # source, severity, namespace, rule (policy/rule)


def rule_of(finding: Finding, *, detailed: bool) -> str:
    """The rule a finding broke: Falco or audit rule, policy (/rule when detailed), trivy
    check, secret rule, or `vulnerability` (a trivy CVE: its severity is the other label)."""
    details: Mapping[str, Any] = finding.details
    if "vulnerabilityID" in details:
        return "vulnerability"
    for key in ("checkID", "ruleID"):
        if details.get(key):
            return _clipped(str(details[key]))
    policy, rule = details.get("policy"), details.get("rule")
    if policy:
        return _clipped(f"{policy}/{rule}" if detailed and rule else str(policy))
    if rule:
        return _clipped(str(rule))
    return finding.event_type


def _clipped(text: str) -> str:
    return text if len(text) <= MAX_RULE_CHARS else text[: MAX_RULE_CHARS - 1] + "…"


class FindingsByRule:
    """`zen_watcher_findings_detected_total`: new findings by rule, at most `max_series` label
    sets plus one overflow series per source and severity."""

    def __init__(self, *, mode: FindingsMode, max_series: int, registry: CollectorRegistry) -> None:
        if max_series < 1:
            raise ValueError(f"max_series must be at least 1, got {max_series}")
        self.mode = mode
        self.max_series = max_series
        self._labelnames: tuple[str, ...] = (
            ("source", "severity", "namespace", "rule")
            if mode == FindingsMode.DETAILED
            else ("source", "severity", "rule")
        )
        self._counts: dict[tuple[str, ...], float] = {}
        self._overflow: dict[tuple[str, ...], float] = {}
        if mode != FindingsMode.OFF:
            registry.register(self)

    def detected(self, finding: Finding, namespace: str) -> None:
        """Count one new finding, written to the Observation namespace `namespace`."""
        if self.mode == FindingsMode.OFF:
            return
        source, severity = finding.source, finding.severity.value
        if self.mode == FindingsMode.DETAILED:
            rule = rule_of(finding, detailed=True)
            key: tuple[str, ...] = (source, severity, namespace, rule)
        else:
            key = (source, severity, rule_of(finding, detailed=False))
        if key in self._counts or len(self._counts) < self.max_series:
            self._counts[key] = self._counts.get(key, 0.0) + 1
            return
        overflow = (source, severity, *(OVERFLOW,) * (len(key) - 2))
        self._overflow[overflow] = self._overflow.get(overflow, 0.0) + 1

    def series(self) -> int:
        """Label sets exposed now, the overflow series included."""
        return len(self._counts) + len(self._overflow)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = self._family()
        for counts in (self._counts, self._overflow):
            for values, value in counts.items():
                family.add_metric(values, value)
        yield family

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield self._family()

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(
            DETECTED_FAMILY,
            "New findings (Observations created), by source, severity, rule and, with "
            "FINDINGS_METRICS=detailed, namespace; rule _overflow past "
            "FINDINGS_METRICS_MAX_SERIES.",
            labels=self._labelnames,
        )


class CurrentFindings:
    """`zen_watcher_findings`: Observations that exist now, by source, severity, namespace and
    phase (open, resolved); set by the leader's view, empty elsewhere."""

    def __init__(self, *, registry: CollectorRegistry) -> None:
        self._counts: Mapping[CurrentKey, int] = {}
        registry.register(self)

    def set(self, counts: Mapping[CurrentKey, int]) -> None:
        """Expose exactly `counts` (the caller keeps ownership; it may keep updating it)."""
        self._counts = counts

    def clear(self) -> None:
        self._counts = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        # A label set that drops to 0 stays, at 0, for the term: "no critical open" is a 0.
        for values, count in self._counts.items():
            family.add_metric(values, count)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            CURRENT_FAMILY,
            "Observations in scope now, by source, severity, namespace and phase (open, "
            "resolved); exported by the leader only, from a watch of the Observations.",
            labels=CURRENT_LABELS,
        )
