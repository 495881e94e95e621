"""Report sources: the kinds we watch, and one report in, per-entry outcomes out.

A report maps to `ReportFindings` (findings, skipped and rejected entries), so one malformed
result never loses the good ones. Each finding carries its report's `Origin`, whose key survives
trivy's delete-and-recreate, so the reconciler can tell which Observations a report owns
(DESIGN.md §3). Pure: the kind-specific mappers live in `policyreports` and `trivy`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeGuard

# Import modules, not names: policyreports and trivy import this module back, and nothing
# here touches them until a report is mapped.
from zenwatcher.mapping import policyreports, timestamps, trivy
from zenwatcher.mapping.rejection import Ignored, Rejected
from zenwatcher.records import Finding, Origin

POLICY_GROUP = "wgpolicyk8s.io"
OPENREPORTS_GROUP = "openreports.io"
TRIVY_GROUP = "aquasecurity.github.io"


class ReportKind(NamedTuple):
    """One report kind we watch, as its CRD declares it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        """`group/version`, as written in a report's `apiVersion`."""
        return f"{self.group}/{self.version}"


REPORT_KINDS: tuple[ReportKind, ...] = (
    ReportKind(POLICY_GROUP, "v1alpha2", "PolicyReport", "policyreports", True),
    ReportKind(POLICY_GROUP, "v1alpha2", "ClusterPolicyReport", "clusterpolicyreports", False),
    ReportKind(OPENREPORTS_GROUP, "v1alpha1", "Report", "reports", True),
    ReportKind(OPENREPORTS_GROUP, "v1alpha1", "ClusterReport", "clusterreports", False),
    ReportKind(TRIVY_GROUP, "v1alpha1", "VulnerabilityReport", "vulnerabilityreports", True),
    ReportKind(
        TRIVY_GROUP, "v1alpha1", "ClusterVulnerabilityReport", "clustervulnerabilityreports", False
    ),
    ReportKind(TRIVY_GROUP, "v1alpha1", "ConfigAuditReport", "configauditreports", True),
    ReportKind(
        TRIVY_GROUP, "v1alpha1", "ClusterConfigAuditReport", "clusterconfigauditreports", False
    ),
    ReportKind(TRIVY_GROUP, "v1alpha1", "ExposedSecretReport", "exposedsecretreports", True),
    ReportKind(TRIVY_GROUP, "v1alpha1", "RbacAssessmentReport", "rbacassessmentreports", True),
    ReportKind(
        TRIVY_GROUP,
        "v1alpha1",
        "ClusterRbacAssessmentReport",
        "clusterrbacassessmentreports",
        False,
    ),
    ReportKind(TRIVY_GROUP, "v1alpha1", "InfraAssessmentReport", "infraassessmentreports", True),
    ReportKind(
        TRIVY_GROUP,
        "v1alpha1",
        "ClusterInfraAssessmentReport",
        "clusterinfraassessmentreports",
        False,
    ),
)

# Which tool a group's reports belong to, for `convert --source`.
_SOURCES = {POLICY_GROUP: "kyverno", OPENREPORTS_GROUP: "kyverno", TRIVY_GROUP: "trivy"}


@dataclass(frozen=True, slots=True)
class ReportFindings:
    """What one report says: its desired findings, and the entries that are not findings."""

    findings: list[Finding] = field(default_factory=list)
    skipped: list[Ignored] = field(default_factory=list)  # pass/skip results, passed checks
    rejected: list[Rejected] = field(default_factory=list)  # malformed entries
    duplicates: int = 0  # entries folded into an earlier one with the same identity


def group_of(api_version: str) -> str:
    """The API group of `group/version`; "" for the core group (`v1`)."""
    group, _, version = api_version.rpartition("/")
    return group if version else ""


def find_kind(api_version: str, kind: str) -> ReportKind | None:
    """The watched kind with this group and kind, any version; None if we do not map it."""
    group = group_of(api_version)
    return next(
        (known for known in REPORT_KINDS if (known.group, known.kind) == (group, kind)), None
    )


def report_source(api_version: str) -> str:
    """ "kyverno" for policy-report groups, "trivy" for trivy-operator's, "" for any other."""
    return _SOURCES.get(group_of(api_version), "")


def origin_key(api_version: str, kind: str, namespace: str, name: str) -> str:
    """16 hex of sha256("group/kind/namespace/name"): stable across uid and version changes."""
    path = f"{group_of(api_version)}/{kind}/{namespace}/{name}"
    return hashlib.sha256(path.encode()).hexdigest()[:16]


def origin_of(report: Mapping[str, Any]) -> Origin:
    """The `Origin` every finding of this report carries."""
    meta = field_map(report, "metadata")
    key = origin_key(
        text(report, "apiVersion"),
        text(report, "kind"),
        text(meta, "namespace"),
        text(meta, "name"),
    )
    return Origin(uid=text(meta, "uid"), key=key)


def split_documents(doc: Any) -> list[Any]:
    """Report objects in one decoded document: a `List`/`*List`'s items, else the object itself."""
    if doc is None:
        return []  # an empty YAML document, e.g. before a leading `---`
    if isinstance(doc, list):
        return [item for element in doc for item in split_documents(element)]
    if isinstance(doc, Mapping) and text(doc, "kind").endswith("List"):
        items = doc.get("items")
        if isinstance(items, list):
            return list(items)
    return [doc]


def map_report(report: Any) -> ReportFindings:
    """Map any watched report by its group and kind.

    Raises Rejected("invalid_shape") for a non-object or one without apiVersion/kind, and
    Ignored("unsupported_kind") for kinds we do not map (e.g. ClusterComplianceReport).
    """
    if not isinstance(report, Mapping):
        raise Rejected("invalid_shape", f"a report must be an object, not {type(report).__name__}")
    api_version, kind = text(report, "apiVersion"), text(report, "kind")
    if not api_version or not kind:
        raise Rejected("invalid_shape", "a report needs apiVersion and kind")
    known = find_kind(api_version, kind)
    if known is None:
        raise Ignored("unsupported_kind", f"{kind} ({api_version}) is not a report we map")
    if known.group == TRIVY_GROUP:
        return trivy.map_trivy_report(report)
    return policyreports.map_policy_report(report)


def collect(entries: Iterable[Any], map_entry: Callable[[Any], list[Finding]]) -> ReportFindings:
    """Map each entry on its own: a skipped or rejected entry costs only itself."""
    findings: list[Finding] = []
    skipped: list[Ignored] = []
    rejected: list[Rejected] = []
    for entry in entries:
        try:
            findings.extend(map_entry(entry))
        except Ignored as verdict:
            skipped.append(verdict)
        except Rejected as verdict:
            rejected.append(verdict)
    unique, duplicates = merge_duplicates(findings)
    return ReportFindings(unique, skipped, rejected, duplicates)


def merge_duplicates(findings: Iterable[Finding]) -> tuple[list[Finding], int]:
    """One finding per Observation name, and how many entries were folded away.

    Two entries of one report with the same identity would fight over one Observation, so the
    first is kept, raised to the highest severity among them, with `details.occurrences`.
    """
    kept: dict[str, Finding] = {}
    counts: dict[str, int] = {}
    for finding in findings:
        name = finding.name
        counts[name] = counts.get(name, 0) + 1
        first = kept.setdefault(name, finding)
        if finding.severity.rank > first.severity.rank:
            kept[name] = replace(first, severity=finding.severity)
    merged = [
        finding if counts[name] == 1 else with_details(finding, occurrences=counts[name])
        for name, finding in kept.items()
    ]
    return merged, sum(counts.values()) - len(kept)


def with_details(finding: Finding, **extra: Any) -> Finding:
    """A copy of `finding` with more details."""
    return replace(finding, details={**finding.details, **extra})


def report_time(value: Any) -> datetime | None:
    """A tool's time as aware UTC, or None: RFC 3339 text, epoch, `{seconds, nanos}`, datetime.

    YAML decodes unquoted timestamps to datetimes, and PolicyReport results use protobuf's
    `{seconds, nanos}` (the trivy adapter even writes negative nanos); none of it may reject.
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, Mapping):
        seconds, nanos = value.get("seconds"), value.get("nanos") or 0
        if not _is_number(seconds) or not _is_number(nanos) or seconds <= 0:
            return None
        return timestamps.parse_time(seconds + nanos / 1e9)
    return timestamps.parse_time(value)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def field_map(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`obj[key]` when it is an object, else an empty one (partial reports omit a lot)."""
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def text(obj: Mapping[str, Any], key: str) -> str:
    """`obj[key]` when it is a string, else ""."""
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def entries_of(obj: Mapping[str, Any], key: str) -> list[Any]:
    """The list under `key` ([] when absent); a non-list means the whole report is malformed."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Rejected("invalid_shape", f"{key} must be a list, not {type(value).__name__}")
    return value


def compact(details: Mapping[str, Any]) -> dict[str, Any]:
    """`details` without the fields a tool left empty."""
    return {
        key: value
        for key, value in details.items()
        if value is not None and not (isinstance(value, str | list | Mapping) and not value)
    }
