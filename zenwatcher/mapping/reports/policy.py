"""PolicyReport / ClusterPolicyReport (wgpolicyk8s.io) and openreports Report / ClusterReport.

Each fail, warn or error result becomes one finding per affected resource (docs/design.md §4);
pass and skip results are skipped, results without a recognisable `result` are rejected.
Identity: eventType, the resource (kind, namespace, name or uid) or else the report itself,
policy and rule. The eventType is in it so that a result changing class (error -> fail) resolves
one Observation and opens another rather than rewriting what an existing one says it found.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zenwatcher.finding import Category, Finding, Origin, ResourceRef, Severity, slugify
from zenwatcher.mapping import severity
from zenwatcher.mapping.rejection import Ignored, Rejected
from zenwatcher.mapping.reports import common
from zenwatcher.mapping.reports.kinds import find_kind


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a result word becomes."""

    event_type: str
    category: Category
    default_severity: Severity


_OUTCOMES = {
    "fail": _Outcome("policy_violation", Category.SECURITY, Severity.MEDIUM),
    "warn": _Outcome("policy_warning", Category.SECURITY, Severity.LOW),
    "error": _Outcome("policy_error", Category.OPERATIONS, Severity.LOW),
}
_NOT_FINDINGS = frozenset({"pass", "skip"})
DEFAULT_SOURCE = "kyverno"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Report:
    """What every result of one report shares."""

    kind: str
    name: str
    namespace: str  # metadata.namespace: the default for refs that lack one
    source: str  # openreports' report-level `source`, "" when absent
    scope: ResourceRef | None
    origin: Origin

    @property
    def subject(self) -> tuple[str, str, str]:
        """Identity "where" of results that name no resource: the report itself."""
        return (self.kind, self.namespace, self.name)


def map_policy_report(report: Mapping[str, Any]) -> common.ReportFindings:
    """Findings of one policy report; see the module docstring for the rules."""
    context = _context(report)
    results = common.entries_of(report, "results")
    return common.collect(results, functools.partial(_map_result, context))


def _context(report: Mapping[str, Any]) -> _Report:
    meta = common.field_map(report, "metadata")
    kind = common.text(report, "kind")
    known = find_kind(common.text(report, "apiVersion"), kind)
    # Only a namespaced report lends its namespace to a scope that omits it.
    namespace = common.text(meta, "namespace") if known is None or known.namespaced else ""
    scope = report.get("scope")
    return _Report(
        kind=kind,
        name=common.text(meta, "name"),
        namespace=namespace,
        source=common.text(report, "source"),
        scope=_ref(scope, namespace) if isinstance(scope, Mapping) else None,
        origin=common.origin_of(report),
    )


def _ref(obj: Mapping[str, Any], default_namespace: str) -> ResourceRef | None:
    """An ObjectReference as a `ResourceRef`; None when it names nothing."""
    ref = ResourceRef(
        api_version=common.text(obj, "apiVersion"),
        kind=common.text(obj, "kind"),
        name=common.text(obj, "name"),
        namespace=common.text(obj, "namespace") or default_namespace,
        uid=common.text(obj, "uid"),
    )
    return ref if ref.name or ref.uid else None


def _map_result(context: _Report, result: Any) -> list[Finding]:
    """One finding per affected resource, or raise the verdict on this result."""
    if not isinstance(result, Mapping):
        raise Rejected("invalid_entry", f"a result must be an object, not {type(result).__name__}")
    word = common.text(result, "result").strip().lower()
    if word in _NOT_FINDINGS:
        raise Ignored(word, f"{_label(result)}: {word}")
    outcome = _OUTCOMES.get(word)
    if outcome is None:
        raise Rejected("unknown_result", f"{_label(result)}: result {result.get('result')!r}")
    return [_finding(context, result, outcome, ref) for ref in _targets(context, result)]


def _targets(context: _Report, result: Mapping[str, Any]) -> list[ResourceRef | None]:
    """The report's scope; else each of the result's resources; else none."""
    if context.scope is not None:
        return [context.scope]
    listed = result.get("resources")
    if not isinstance(listed, list) or not listed:
        return [None]
    refs = [_ref(obj, context.namespace) for obj in listed if isinstance(obj, Mapping)]
    targets: list[ResourceRef | None] = [ref for ref in refs if ref is not None]
    if not targets:
        raise Rejected("invalid_entry", f"{_label(result)}: resources name no object")
    return targets


def _finding(
    context: _Report, result: Mapping[str, Any], outcome: _Outcome, ref: ResourceRef | None
) -> Finding:
    policy, rule = common.text(result, "policy"), common.text(result, "rule")
    where = (ref.kind, ref.namespace, ref.name or ref.uid) if ref else context.subject
    source = common.text(result, "source") or context.source
    return Finding(
        source=slugify(source, default=DEFAULT_SOURCE),
        category=outcome.category,
        severity=severity.map_severity(result.get("severity"), default=outcome.default_severity),
        event_type=outcome.event_type,
        identity=(outcome.event_type, *where, policy, rule),
        resource=ref,
        title=_label(result),
        message=common.text(result, "message"),
        details=_details(context, result),
        detected_at=common.report_time(result.get("timestamp")),
        origin=context.origin,
    )


def _details(context: _Report, result: Mapping[str, Any]) -> dict[str, Any]:
    return common.compact(
        {
            "policy": result.get("policy"),
            "rule": result.get("rule"),
            "result": result.get("result"),
            "category": result.get("category"),
            "scored": result.get("scored"),
            "properties": result.get("properties"),
            "reportKind": context.kind,
            "reportName": context.name,
            "reportNamespace": context.namespace,
            "timestamp": result.get("timestamp"),
        }
    )


def _label(result: Mapping[str, Any]) -> str:
    """`policy/rule`, or whichever of them the result has."""
    names = (common.text(result, "policy"), common.text(result, "rule"))
    return "/".join(name for name in names if name) or "unnamed policy"
