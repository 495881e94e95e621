"""Findings built by hand, for tests that start from a finding rather than a tool's output."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from zenwatcher.finding import Category, Finding, Origin, ResourceRef, Severity


def sample_finding(**changes: object) -> Finding:
    """A high Falco finding (a terminal shell in Pod default/web-1); `changes` replace fields."""
    base = Finding(
        source="falco",
        category=Category.SECURITY,
        severity=Severity.HIGH,
        event_type="runtime_detection",
        identity=("Terminal shell in container", "default", "web-1", "abc123"),
        resource=ResourceRef(kind="Pod", name="web-1", namespace="default"),
        title="t",
        message="m",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def report_finding(namespace: str, *, policy: str = "require-labels") -> Finding:
    """A failed Kyverno rule `policy`/check-team on Pod `namespace`/web, from a report."""
    detected = datetime(2026, 1, 1, tzinfo=UTC)
    return Finding(
        source="kyverno",
        category=Category.COMPLIANCE,
        severity=Severity.HIGH,
        event_type="policy_violation",
        identity=("policy_violation", "Pod", namespace, "web", policy, "check-team"),
        resource=ResourceRef(api_version="v1", kind="Pod", name="web", namespace=namespace),
        title=f"{policy}/check-team",
        details={"policy": policy, "rule": "check-team", "result": "fail"},
        detected_at=detected,
        origin=Origin(uid="u-1", key="0123456789abcdef"),
    )


def falco_finding(namespace: str, index: int, *, rule: str = "Terminal shell") -> Finding:
    """A critical Falco finding of `rule` on Pod `namespace`/web-`index`."""
    return Finding(
        source="falco",
        category=Category.SECURITY,
        severity=Severity.CRITICAL,
        event_type="runtime_detection",
        identity=(rule, namespace, f"web-{index}"),
        resource=ResourceRef(kind="Pod", name=f"web-{index}", namespace=namespace),
        title=rule,
        details={"rule": rule},
    )
