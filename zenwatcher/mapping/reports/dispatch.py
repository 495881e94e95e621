"""One report in, its findings out: picks the mapper by the report's group and kind. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zenwatcher.mapping.rejection import Ignored, Rejected
from zenwatcher.mapping.reports import policy, trivy
from zenwatcher.mapping.reports.common import ReportFindings, text
from zenwatcher.mapping.reports.kinds import TRIVY_GROUP, find_kind


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
    return policy.map_policy_report(report)
