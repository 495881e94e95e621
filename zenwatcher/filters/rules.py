"""Filter rules from the `zen-watcher-filter` ConfigMap (key `filter.json`), and their verdicts.

The JSON format, defaults, check order and drop reasons are those of the Go original
(kube-zen/zen-watcher `pkg/filter`): per-source rules under `sources`, plus `globalNamespaceFilter`.
Parsing is strict on types and values but lenient on unknown keys, which are collected in
`FilterConfig.unknown_keys` for the caller to log. Pure, except `load_filter_file`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from zenwatcher.filters.expression import Expression, ExpressionError, parse_expression
from zenwatcher.finding import Finding, Severity, event_type_slug, slugify
from zenwatcher.mapping import severity

# The original's reason labels, kept so dashboards built on its filter metric still match.
DROP_REASONS: frozenset[str] = frozenset(
    {
        "expression_filtered",
        "source_disabled",
        "global_exclude_namespace",
        "global_include_namespace",
        "include_severity",
        "min_severity",
        "exclude_event_type",
        "include_event_type",
        "exclude_namespace",
        "include_namespace",
        "exclude_kind",
        "include_kind",
        "exclude_category",
        "include_category",
        "exclude_rule",
    }
)

# Where a finding's rule name may live, by source: Falco/Kyverno, Kyverno, trivy checks,
# trivy vulnerabilities, trivy exposed secrets. The original looked at `rule` only.
RULE_DETAIL_KEYS = ("rule", "policy", "checkID", "vulnerabilityID", "ruleID")

_TOP_FIELDS = ("sources", "globalNamespaceFilter", "expression")
_GLOBAL_FIELDS = ("enabled", "includedNamespaces", "excludedNamespaces")
_SOURCE_LISTS = (
    "includeSeverity",
    "excludeNamespaces",
    "includeNamespaces",
    "excludeKinds",
    "includeKinds",
    "ignoreKinds",
    "excludeEventTypes",
    "includeEventTypes",
    "excludeCategories",
    "includeCategories",
    "excludeRules",
)
_SOURCE_FIELDS = ("enabled", "minSeverity", *_SOURCE_LISTS)


class FilterConfigError(ValueError):
    """A filter config that cannot be used; the message names the field and the bad value.

    `position` is where in the `expression` the problem is (from 0), when it is there.
    """

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceFilter:
    """One source's rules. Empty sets mean "no constraint"; values are lowercased."""

    enabled: bool = True
    min_severity: Severity | None = None
    include_severity: frozenset[Severity] = frozenset()
    exclude_namespaces: frozenset[str] = frozenset()
    include_namespaces: frozenset[str] = frozenset()
    exclude_kinds: frozenset[str] = frozenset()  # `ignoreKinds` merged in, as in the original
    include_kinds: frozenset[str] = frozenset()
    exclude_event_types: frozenset[str] = frozenset()  # as snake_case slugs
    include_event_types: frozenset[str] = frozenset()
    exclude_categories: frozenset[str] = frozenset()
    include_categories: frozenset[str] = frozenset()
    exclude_rules: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalNamespaceFilter:
    """Namespace rules for every source, applied only when `enabled`."""

    enabled: bool = False
    included_namespaces: frozenset[str] = frozenset()
    excluded_namespaces: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterConfig:
    """The whole filter: rules by source slug, the global namespace rules, ignored keys."""

    sources: Mapping[str, SourceFilter] = field(default_factory=dict)
    global_namespaces: GlobalNamespaceFilter = GlobalNamespaceFilter()
    expression: Expression | None = None  # parsed once, with the configuration
    unknown_keys: tuple[str, ...] = ()  # dotted paths, e.g. "sources.falco.minSeverty"

    @classmethod
    def empty(cls) -> FilterConfig:
        """No rules: every finding passes (the original's behaviour without a ConfigMap)."""
        return cls()


def passes_everything(config: FilterConfig, source: str) -> bool:
    """Whether `evaluate` answers None for every finding of `source` under `config` (no
    expression, no rules for the source, no global namespace rules): then the intake may count
    a repeat without building its finding (`pipeline.intake`)."""
    return (
        config.expression is None
        and source.lower() not in config.sources
        and not config.global_namespaces.enabled
    )


def evaluate(config: FilterConfig, finding: Finding) -> str | None:
    """None when the finding passes, else the drop reason (one of `DROP_REASONS`).

    Order as in the original: the expression, source enabled, global namespaces, severity,
    event type, namespace, kind, category, rule. Unlike the original, the global namespace rules
    also apply to sources that have no entry under `sources`, as its documentation promises.
    A finding without a namespace or kind has "" there: include lists drop it unless they list "".
    """
    if config.expression is not None and not config.expression.matches(finding):
        return "expression_filtered"
    rules = config.sources.get(finding.source.lower())
    if rules is not None and not rules.enabled:
        return "source_disabled"
    namespace = finding.namespace.lower()
    scope = config.global_namespaces
    if scope.enabled:
        excluded, included = scope.excluded_namespaces, scope.included_namespaces
        reason = _list_reason("namespace", namespace, excluded, included)
        if reason is not None:
            return f"global_{reason}"
    if rules is None:
        return None
    return _severity_reason(rules, finding.severity) or _source_reason(rules, finding, namespace)


def _severity_reason(rules: SourceFilter, level: Severity) -> str | None:
    # As in the original, an include list makes minSeverity irrelevant.
    if rules.include_severity:
        return None if level in rules.include_severity else "include_severity"
    if rules.min_severity is not None and level.rank < rules.min_severity.rank:
        return "min_severity"
    return None


def _source_reason(rules: SourceFilter, finding: Finding, namespace: str) -> str | None:
    # Event types are snake_case slugs on both sides: the mappers emit them, parsing slugs the
    # config's values (the original's examples spell them with hyphens).
    kind = finding.resource.kind.lower() if finding.resource else ""
    category = finding.category.value
    reason = (
        _list_reason(
            "event_type", finding.event_type, rules.exclude_event_types, rules.include_event_types
        )
        or _list_reason("namespace", namespace, rules.exclude_namespaces, rules.include_namespaces)
        or _list_reason("kind", kind, rules.exclude_kinds, rules.include_kinds)
        or _list_reason("category", category, rules.exclude_categories, rules.include_categories)
    )
    if reason is None and rules.exclude_rules and rule_names(finding) & rules.exclude_rules:
        return "exclude_rule"
    return reason


def _list_reason(
    what: str, value: str, exclude: frozenset[str], include: frozenset[str]
) -> str | None:
    """`exclude_<what>` or `include_<what>`, naming the list the value failed; else None."""
    if value in exclude:
        return f"exclude_{what}"
    if include and value not in include:
        return f"include_{what}"
    return None


def rule_names(finding: Finding) -> set[str]:
    names = (finding.details.get(key) for key in RULE_DETAIL_KEYS)
    return {name.lower() for name in names if isinstance(name, str) and name}


def load_filter_file(path: str | os.PathLike[str]) -> FilterConfig:
    """Read and parse a `filter.json` file (a mounted ConfigMap key, or `convert --filter`)."""
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as error:
        raise FilterConfigError(f"{os.fspath(path)}: cannot read: {error.strerror}") from error
    try:
        return parse_filter_config(raw)
    except FilterConfigError as error:
        raise FilterConfigError(f"{os.fspath(path)}: {error}", position=error.position) from error


def parse_filter_config(raw: bytes | str) -> FilterConfig:
    """The `filter.json` document as a `FilterConfig`; `FilterConfigError` when unusable."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise FilterConfigError(f"filter config is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise FilterConfigError(f"filter config: expected an object, got {_json_type(document)}")
    unknown: list[str] = []
    top = _fields(document, known=_TOP_FIELDS, path="", unknown=unknown)
    sources = _sources(top.get("sources"), unknown=unknown)
    scope = _global_filter(top.get("globalNamespaceFilter"), unknown=unknown)
    return FilterConfig(
        sources=sources,
        global_namespaces=scope,
        expression=_expression(top.get("expression")),
        unknown_keys=tuple(unknown),
    )


def _expression(value: object) -> Expression | None:
    """The parsed `expression`; an empty one (Go's zero value) means none."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise FilterConfigError(f"expression: expected a string, got {_json_type(value)}")
    if not value.strip():
        return None
    try:
        return parse_expression(value)
    except ExpressionError as error:
        raise FilterConfigError(f"expression: {error}", position=error.position) from None


def _sources(value: object, *, unknown: list[str]) -> dict[str, SourceFilter]:
    sources: dict[str, SourceFilter] = {}
    spelled: dict[str, str] = {}
    for name, rules in _object(value, path="sources").items():
        # Findings carry slugs, so "Kube_Bench" and "kube-bench" name the same source.
        slug = slugify(name)
        if slug in spelled:
            raise FilterConfigError(f"sources: {spelled[slug]!r} and {name!r} name one source")
        spelled[slug] = name
        sources[slug] = _source_filter(rules, path=f"sources.{name}", unknown=unknown)
    return sources


def _source_filter(value: object, *, path: str, unknown: list[str]) -> SourceFilter:
    fields = _fields(_object(value, path=path), known=_SOURCE_FIELDS, path=path, unknown=unknown)
    lists = {name: _strings(fields.get(name), path=f"{path}.{name}") for name in _SOURCE_LISTS}
    minimum = fields.get("minSeverity")

    def lowered(*names: str) -> frozenset[str]:
        return frozenset(item.lower() for name in names for item in lists[name])

    def event_types(name: str) -> frozenset[str]:
        return frozenset(event_type_slug(item) for item in lists[name])

    severities = enumerate(lists["includeSeverity"])
    return SourceFilter(
        enabled=_boolean(fields.get("enabled"), default=True, path=f"{path}.enabled"),
        min_severity=None if minimum is None else _severity(minimum, path=f"{path}.minSeverity"),
        include_severity=frozenset(
            _severity(word, path=f"{path}.includeSeverity[{index}]") for index, word in severities
        ),
        exclude_namespaces=lowered("excludeNamespaces"),
        include_namespaces=lowered("includeNamespaces"),
        exclude_kinds=lowered("excludeKinds", "ignoreKinds"),
        include_kinds=lowered("includeKinds"),
        exclude_event_types=event_types("excludeEventTypes"),
        include_event_types=event_types("includeEventTypes"),
        exclude_categories=lowered("excludeCategories"),
        include_categories=lowered("includeCategories"),
        exclude_rules=lowered("excludeRules"),
    )


def _global_filter(value: object, *, unknown: list[str]) -> GlobalNamespaceFilter:
    path = "globalNamespaceFilter"
    fields = _fields(_object(value, path=path), known=_GLOBAL_FIELDS, path=path, unknown=unknown)
    included = _strings(fields.get("includedNamespaces"), path=f"{path}.includedNamespaces")
    excluded = _strings(fields.get("excludedNamespaces"), path=f"{path}.excludedNamespaces")
    return GlobalNamespaceFilter(
        enabled=_boolean(fields.get("enabled"), default=False, path=f"{path}.enabled"),
        included_namespaces=frozenset(name.lower() for name in included),
        excluded_namespaces=frozenset(name.lower() for name in excluded),
    )


def _fields(
    document: Mapping[str, Any], *, known: tuple[str, ...], path: str, unknown: list[str]
) -> dict[str, Any]:
    """Known fields by canonical name, matched case-insensitively as Go's encoding/json does.

    A JSON null counts as absent (Go leaves the zero value); other keys go to `unknown`.
    """
    canonical = {name.lower(): name for name in known}
    fields: dict[str, Any] = {}
    for key, value in document.items():
        name = canonical.get(key.lower())
        if name is None:
            unknown.append(f"{path}.{key}" if path else key)
        elif value is not None:
            fields[name] = value
    return fields


def _object(value: object, *, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FilterConfigError(f"{path}: expected an object, got {_json_type(value)}")
    return value


def _strings(value: object, *, path: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FilterConfigError(f"{path}: expected an array of strings, got {_json_type(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise FilterConfigError(f"{path}[{index}]: expected a string, got {_json_type(item)}")
    return value


def _boolean(value: object, *, default: bool, path: str) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise FilterConfigError(f"{path}: expected true or false, got {_json_type(value)}")
    return value


def _severity(word: object, *, path: str) -> Severity:
    if not isinstance(word, str):
        raise FilterConfigError(f"{path}: expected a severity string, got {_json_type(word)}")
    # map_severity answers its default for words it does not know, so a word is known
    # exactly when two different defaults give the same answer.
    low = severity.map_severity(word, default=Severity.INFO)
    if low is not severity.map_severity(word, default=Severity.CRITICAL):
        raise FilterConfigError(
            f"{path}: unknown severity {word!r} (expected CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN)"
        )
    return low


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, with the value itself when short."""
    if value is None:
        return "null"
    kind = {bool: "boolean", int: "number", float: "number", str: "string", list: "an array"}
    name = kind.get(type(value), "an object")
    shown = orjson.dumps(value).decode()
    return f"{name} {shown}" if len(shown) <= 60 else name
