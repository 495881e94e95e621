"""Filter configs and the finding they are tried on: one case for each drop reason, shared by
the tests of the verdicts and of their explanations."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from zenwatcher.filters import rules
from zenwatcher.finding import Category, Finding, ResourceRef, Severity


def parse(document: Any) -> rules.FilterConfig:
    """A filter config from its JSON document (given as Python values)."""
    return rules.parse_filter_config(json.dumps(document))


def finding(**overrides: Any) -> Finding:
    """A Falco-like finding in namespace `production` on a Pod; fields overridable."""
    fields: dict[str, Any] = {
        "source": "falco",
        "category": Category.SECURITY,
        "severity": Severity.HIGH,
        "event_type": "runtime_detection",
        "identity": ("Terminal shell in container", "production", "web"),
        "resource": ResourceRef(kind="Pod", name="web", namespace="production"),
        "details": {"rule": "Terminal shell in container"},
    }
    fields.update(overrides)
    return Finding(**fields)


@dataclasses.dataclass(frozen=True)
class DropCase:
    """A config under which `finding` is dropped for `reason`."""

    reason: str
    config: dict[str, Any]
    finding: Finding


def source_rules(**source: Any) -> dict[str, Any]:
    """A config with `source` as the rules of the `falco` source."""
    return {"sources": {"falco": source}}


DROP_CASES = [
    DropCase("source_disabled", source_rules(enabled=False), finding()),
    DropCase(
        "global_exclude_namespace",
        {"globalNamespaceFilter": {"enabled": True, "excludedNamespaces": ["Production"]}},
        finding(),
    ),
    DropCase(
        "global_include_namespace",
        {"globalNamespaceFilter": {"enabled": True, "includedNamespaces": ["staging"]}},
        finding(),
    ),
    DropCase("include_severity", source_rules(includeSeverity=["critical"]), finding()),
    DropCase("min_severity", source_rules(minSeverity="CRITICAL"), finding()),
    DropCase(
        "exclude_event_type", source_rules(excludeEventTypes=["runtime-detection"]), finding()
    ),
    DropCase("include_event_type", source_rules(includeEventTypes=["pod_exec"]), finding()),
    DropCase("exclude_namespace", source_rules(excludeNamespaces=["production"]), finding()),
    DropCase("include_namespace", source_rules(includeNamespaces=["staging"]), finding()),
    DropCase("exclude_kind", source_rules(excludeKinds=["pod"]), finding()),
    DropCase("include_kind", source_rules(includeKinds=["Deployment"]), finding()),
    DropCase("exclude_category", source_rules(excludeCategories=["Security"]), finding()),
    DropCase("include_category", source_rules(includeCategories=["compliance"]), finding()),
    DropCase("exclude_rule", source_rules(excludeRules=["terminal shell in container"]), finding()),
    DropCase("expression_filtered", {"expression": "spec.severity >= 'critical'"}, finding()),
]
