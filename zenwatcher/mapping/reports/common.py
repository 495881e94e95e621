"""What every report mapper shares: per-entry collection, the report's `Origin`, and lenient
readers for partial reports. Pure.

A report maps to `ReportFindings` (findings, skipped and rejected entries), so one malformed
result never loses the good ones. Each finding carries its report's `Origin`, whose key survives
trivy's delete-and-recreate, so the reconciler can tell which Observations a report owns
(docs/design.md §3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeGuard

from zenwatcher.finding import Finding, Origin
from zenwatcher.mapping import timestamps
from zenwatcher.mapping.rejection import Ignored, Rejected
from zenwatcher.mapping.reports.kinds import group_of


@dataclass(frozen=True, slots=True)
class ReportFindings:
    """What one report says: its desired findings, and the entries that are not findings."""

    findings: list[Finding] = field(default_factory=list)
    skipped: list[Ignored] = field(default_factory=list)  # pass/skip results, passed checks
    rejected: list[Rejected] = field(default_factory=list)  # malformed entries
    duplicates: int = 0  # entries folded into an earlier one with the same identity


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
