"""Which rule a finding is counted under, the series cap, and the phase a label set says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from zenwatcher.finding import Category, Finding, Origin, Severity
from zenwatcher.metrics import Metrics
from zenwatcher.metrics.findings import FindingsMode, rule_of
from zenwatcher.observation import (
    LABEL_ORIGIN,
    LABEL_PHASE,
    PhaseLabel,
    phase_label_of,
    to_observation,
)
from zenwatcher.settings import FINDINGS_MODES, Settings


def finding(details: dict[str, object], *, event_type: str = "runtime_detection") -> Finding:
    return Finding(
        source="x",
        category=Category.SECURITY,
        severity=Severity.HIGH,
        event_type=event_type,
        identity=("a",),
        details=details,
    )


@pytest.mark.parametrize(
    ("details", "simple"),
    [
        ({"rule": "Terminal shell in container"}, "Terminal shell in container"),
        ({"policy": "require-labels", "rule": "check-team"}, "require-labels"),
        ({"vulnerabilityID": "CVE-2024-1", "severity": "CRITICAL"}, "vulnerability"),
        ({"checkID": "KSV001", "title": "t"}, "KSV001"),
        ({"ruleID": "aws-access-key-id"}, "aws-access-key-id"),
        ({}, "policy_violation"),
        ({"rule": "r" * 300}, "r" * 127 + "…"),
    ],
)
def test_rule_of(details: dict[str, object], simple: str) -> None:
    """Falco/audit rule, policy (policy/rule when detailed), trivy check, secret rule, CVE
    bucket, else the event type; long names clipped."""
    found = finding(details, event_type="policy_violation")
    assert simple == rule_of(found, detailed=False)
    if "policy" in details:
        assert "require-labels/check-team" == rule_of(found, detailed=True)


def test_off_mode_exposes_no_family() -> None:
    """FINDINGS_METRICS=off: the family is not even registered."""
    metrics = Metrics(CollectorRegistry(), findings_mode=FindingsMode.OFF)
    metrics.findings_detected.detected(finding({"rule": "a"}), "default")
    assert b"zen_watcher_findings_detected" not in generate_latest(metrics.registry)


def test_cap_holds_under_many_rules() -> None:
    """10,000 distinct rules under a cap of 100: 100 series plus one overflow series."""
    metrics = Metrics(CollectorRegistry(), findings_max_series=100)
    for index in range(10_000):
        metrics.findings_detected.detected(finding({"rule": f"r{index}"}), "default")
    assert 101 == metrics.findings_detected.series()
    overflow = metrics.registry.get_sample_value(
        "zen_watcher_findings_detected_total",
        {"source": "x", "severity": "high", "rule": "_overflow"},
    )
    assert 9_900 == overflow


def test_max_series_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Metrics(CollectorRegistry(), findings_max_series=0)


@pytest.mark.parametrize(
    ("labels", "phase"),
    [
        ({LABEL_PHASE: "open"}, PhaseLabel.OPEN),
        ({LABEL_PHASE: "resolved", LABEL_ORIGIN: "k"}, PhaseLabel.RESOLVED),
        ({}, PhaseLabel.OPEN),  # an event finding written before the label existed
        ({LABEL_ORIGIN: "k"}, PhaseLabel.RESOLVED),  # no phase is not Open (design §2)
        ({LABEL_PHASE: "bogus"}, PhaseLabel.OPEN),
    ],
)
def test_phase_label_of(labels: dict[str, str], phase: PhaseLabel) -> None:
    assert phase == phase_label_of(labels)


def test_report_finding_body_is_labelled_open() -> None:
    found = finding({})
    found.origin = Origin(uid="u", key="0123456789abcdef")
    body = to_observation(found, namespace="d", now=datetime.now(UTC), ttl_seconds=60)
    assert "open" == body["metadata"]["labels"][LABEL_PHASE]
    assert "Open" == body["status"]["phase"]


def test_settings_offer_exactly_the_modes() -> None:
    """FINDINGS_METRICS accepts the modes Metrics knows, and defaults to simple."""
    assert set(FINDINGS_MODES) == {mode.value for mode in FindingsMode}
    assert FindingsMode.SIMPLE == Settings.from_env({}).findings_metrics
    assert 2000 == Settings.from_env({}).findings_metrics_max_series
