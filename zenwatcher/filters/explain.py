"""Why a filter dropped a finding: the value that failed the rule, for people, not for metrics.

`rules.evaluate` answers only a reason label, cheaply, for every event; this module is called for
the few drops someone looks at (`convert --explain`, the daemon's sampled debug lines) and says
which value failed which rule. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from zenwatcher.filters import rules
from zenwatcher.finding import Finding


def why(config: rules.FilterConfig, finding: Finding, reason: str) -> str:
    """The value that made `rules.evaluate` answer `reason`, as one readable phrase."""
    if reason == "expression_filtered" and config.expression is not None:
        explanation = config.expression.explain(finding)
        values = ", ".join(f"{path} = {_shown(value)}" for path, value in explanation.values)
        return f"clause {explanation.clause}" + (f" with {values}" if values else "")
    source_rules = config.sources.get(finding.source.lower())
    kind = finding.resource.kind if finding.resource else ""
    phrases = {
        "source_disabled": f"source {finding.source} disabled",
        "include_severity": f"severity {finding.severity.value}",
        "min_severity": f"severity {finding.severity.value}",
        "namespace": f"namespace {_shown(finding.namespace)}",
        "event_type": f"event type {finding.event_type}",
        "kind": f"kind {_shown(kind)}",
        "category": f"category {finding.category.value}",
    }
    if reason == "min_severity" and source_rules and source_rules.min_severity:
        return f"{phrases[reason]} below minSeverity {source_rules.min_severity.value}"
    if reason == "include_severity" and source_rules:
        listed = sorted(level.value for level in source_rules.include_severity)
        return f"{phrases[reason]} not in includeSeverity {listed}"
    if reason == "exclude_rule" and source_rules:
        names = sorted(rules.rule_names(finding) & source_rules.exclude_rules)
        return f"rule {_shown(names[0] if names else '')} in excludeRules"
    if reason in phrases:
        return phrases[reason]
    # exclude_<what>, include_<what>, global_…: the value, and which list it failed
    what = reason.removeprefix("global_").partition("_")[2]
    verdict = "excluded" if "exclude_" in reason else "not included"
    return f"{phrases[what]} {verdict}" if what in phrases else reason


def _shown(value: Any) -> str:
    """A value as JSON, short: strings quoted, so an empty one is visible."""
    if isinstance(value, Mapping):
        value = dict(value)
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= 120 else text[:119] + "…"
