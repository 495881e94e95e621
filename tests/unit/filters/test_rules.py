"""Filter config parsing (the original's `filter.json`) and filter verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.harness.filter_cases import DROP_CASES, DropCase, finding, parse, source_rules
from zenwatcher.filters import rules
from zenwatcher.finding import Finding, ResourceRef, Severity

# The shape documented by the original (kube-zen/zen-watcher docs/FILTERING.md), plus the
# global filter and the fields its examples leave out.
ORIGINAL_SAMPLE = {
    "sources": {
        "trivy": {"includeSeverity": ["CRITICAL", "HIGH"]},
        "kyverno": {
            "excludeRules": ["disallow-latest-tag"],
            "excludeEventTypes": ["audit", "info"],
            "excludeKinds": ["ConfigMap", "Secret"],
        },
        "kubernetesEvents": {"ignoreKinds": ["Pod", "ConfigMap"]},
        "audit": {"includeEventTypes": ["resource-deletion", "secret-access", "rbac-change"]},
        "falco": {
            "enabled": True,
            "minSeverity": "HIGH",
            "includeNamespaces": ["production", "staging"],
            "excludeNamespaces": ["kube-system"],
        },
        "kube-bench": {"excludeCategories": ["compliance"], "includeCategories": ["security"]},
        "checkov": {"enabled": False},
    },
    "globalNamespaceFilter": {
        "enabled": True,
        "includedNamespaces": [],
        "excludedNamespaces": ["kube-public"],
    },
}


def cluster_scoped(**overrides: Any) -> Finding:
    """A finding about a cluster-scoped object: no namespace."""
    resource = ResourceRef(kind="ClusterRoleBinding", name="admin")
    return finding(resource=resource, **overrides)


class TestParse:
    def test_original_sample(self) -> None:
        """The original's documented sample parses into the matching rules."""
        config = parse(ORIGINAL_SAMPLE)
        falco = config.sources["falco"]
        names = {"trivy", "kyverno", "kubernetesevents", "audit", "falco", "kube-bench", "checkov"}
        assert names == set(config.sources)
        assert {Severity.CRITICAL, Severity.HIGH} == config.sources["trivy"].include_severity
        assert Severity.HIGH == falco.min_severity
        assert frozenset({"production", "staging"}) == falco.include_namespaces
        assert frozenset({"kube-system"}) == falco.exclude_namespaces
        assert frozenset({"disallow-latest-tag"}) == config.sources["kyverno"].exclude_rules
        assert frozenset({"configmap", "secret"}) == config.sources["kyverno"].exclude_kinds
        assert False is config.sources["checkov"].enabled
        assert True is config.global_namespaces.enabled
        assert frozenset({"kube-public"}) == config.global_namespaces.excluded_namespaces
        assert () == config.unknown_keys

    def test_empty_document(self) -> None:
        """`{}` is the empty config, under which everything passes."""
        assert rules.FilterConfig.empty() == parse({})

    def test_event_types_are_slugged(self) -> None:
        """The original's hyphenated event types are kept in our snake_case spelling."""
        audit_rules = parse(ORIGINAL_SAMPLE).sources["audit"]
        expected = frozenset({"resource_deletion", "secret_access", "rbac_change"})
        assert expected == audit_rules.include_event_types

    def test_ignore_kinds_merge_into_exclude_kinds(self) -> None:
        """`ignoreKinds` is the original's alias of `excludeKinds`; both lists count."""
        config = parse({"sources": {"k": {"excludeKinds": ["Secret"], "ignoreKinds": ["Pod"]}}})
        assert frozenset({"secret", "pod"}) == config.sources["k"].exclude_kinds

    def test_keys_match_case_insensitively(self) -> None:
        """Field names match in any case, as Go's encoding/json matched them in the original."""
        config = parse({"Sources": {"Falco": {"MINSEVERITY": "high", "Enabled": False}}})
        assert Severity.HIGH == config.sources["falco"].min_severity
        assert False is config.sources["falco"].enabled

    def test_source_names_are_slugged(self) -> None:
        """Source names are matched as the slugs findings carry."""
        config = parse({"sources": {"Kube_Bench": {"enabled": False}}})
        assert ["kube-bench"] == list(config.sources)

    def test_nulls_are_absent(self) -> None:
        """A JSON null leaves a field at its default, as in the original."""
        config = parse(
            {"sources": {"falco": {"enabled": None, "minSeverity": None}, "trivy": None}}
        )
        assert rules.SourceFilter() == config.sources["falco"]
        assert rules.SourceFilter() == config.sources["trivy"]

    def test_unknown_keys_are_collected(self) -> None:
        """Unknown keys are kept for the caller to log; `expression` is no longer one."""
        config = parse(
            {
                "colour": "blue",
                "expression": "spec.severity >= 'HIGH'",
                "sources": {"falco": {"minSeverty": "HIGH"}},
                "globalNamespaceFilter": {"included": ["a"]},
            }
        )
        expected = (
            "colour",
            "sources.falco.minSeverty",
            "globalNamespaceFilter.included",
        )
        assert expected == config.unknown_keys

    @pytest.mark.parametrize(
        ("word", "expected"),
        [
            ("CRITICAL", Severity.CRITICAL),
            ("critical", Severity.CRITICAL),
            ("High", Severity.HIGH),
            ("error", Severity.HIGH),
            ("MEDIUM", Severity.MEDIUM),
            ("Warning", Severity.MEDIUM),
            ("low", Severity.LOW),
            ("UNKNOWN", Severity.INFO),
            ("info", Severity.INFO),
        ],
    )
    def test_severity_words(self, word: str, expected: Severity) -> None:
        """Severity words are read case-insensitively with the mappers' vocabulary."""
        config = parse({"sources": {"s": {"minSeverity": word, "includeSeverity": [word]}}})
        assert expected == config.sources["s"].min_severity
        assert frozenset({expected}) == config.sources["s"].include_severity

    def test_bytes_input(self) -> None:
        """The raw ConfigMap bytes parse as well as text."""
        assert (
            Severity.LOW
            == rules.parse_filter_config(b'{"sources": {"falco": {"minSeverity": "LOW"}}}')
            .sources["falco"]
            .min_severity
        )


class TestParseErrors:
    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ("", "filter config is not valid JSON"),
            ("{'sources': {}}", "filter config is not valid JSON"),
            ("[]", "filter config: expected an object, got an array []"),
            ("null", "filter config: expected an object, got null"),
            ('{"sources": ["falco"]}', "sources: expected an object, got an array"),
            (
                '{"sources": {"falco": "off"}}',
                'sources.falco: expected an object, got string "off"',
            ),
            (
                '{"sources": {"falco": {"enabled": "false"}}}',
                'sources.falco.enabled: expected true or false, got string "false"',
            ),
            (
                '{"sources": {"falco": {"minSeverity": "HIHG"}}}',
                "sources.falco.minSeverity: unknown severity 'HIHG'",
            ),
            (
                '{"sources": {"falco": {"minSeverity": 3}}}',
                "sources.falco.minSeverity: expected a severity string, got number 3",
            ),
            (
                '{"sources": {"trivy": {"includeSeverity": ["HIGH", "severe"]}}}',
                "sources.trivy.includeSeverity[1]: unknown severity 'severe'",
            ),
            (
                '{"sources": {"trivy": {"excludeNamespaces": "kube-system"}}}',
                "sources.trivy.excludeNamespaces: expected an array of strings, "
                'got string "kube-system"',
            ),
            (
                '{"sources": {"trivy": {"excludeKinds": ["Pod", 7]}}}',
                "sources.trivy.excludeKinds[1]: expected a string, got number 7",
            ),
            (
                '{"globalNamespaceFilter": {"enabled": 1}}',
                "globalNamespaceFilter.enabled: expected true or false, got number 1",
            ),
            (
                '{"globalNamespaceFilter": {"excludedNamespaces": {"a": 1}}}',
                "globalNamespaceFilter.excludedNamespaces: expected an array of strings, "
                'got an object {"a":1}',
            ),
            (
                '{"sources": {"falco": {}, "Falco": {}}}',
                "sources: 'falco' and 'Falco' name one source",
            ),
        ],
    )
    def test_message_names_field_and_value(self, raw: str, message: str) -> None:
        """An unusable config raises FilterConfigError naming the field and the bad value."""
        with pytest.raises(rules.FilterConfigError) as caught:
            rules.parse_filter_config(raw)
        assert str(caught.value).startswith(message)

    def test_expression_error_names_the_position(self) -> None:
        """An expression that does not parse is a configuration error with its position."""
        with pytest.raises(rules.FilterConfigError) as caught:
            parse({"expression": "spec.severity >= 'high' AND (is_critical"})
        assert str(caught.value) == (
            "expression: at character 41: expected ')' to close the '(' at character 29, "
            "found the end of the expression"
        )
        assert 40 == caught.value.position

    def test_expression_must_be_a_string(self) -> None:
        """A non-string expression is refused, naming its type."""
        with pytest.raises(rules.FilterConfigError, match="expression: expected a string"):
            parse({"expression": ["is_critical"]})

    def test_is_a_value_error(self) -> None:
        """Callers that catch ValueError also catch a bad filter config."""
        assert issubclass(rules.FilterConfigError, ValueError)


class TestLoadFilterFile:
    def test_reads_file(self, tmp_path: Path) -> None:
        """A `filter.json` file on disk (a mounted ConfigMap key) loads."""
        path = tmp_path / "filter.json"
        path.write_text(json.dumps(ORIGINAL_SAMPLE))
        assert parse(ORIGINAL_SAMPLE) == rules.load_filter_file(path)

    def test_missing_file_names_path(self, tmp_path: Path) -> None:
        """A file that cannot be read gives an error naming it."""
        path = tmp_path / "absent.json"
        with pytest.raises(rules.FilterConfigError, match=r"absent\.json: cannot read"):
            rules.load_filter_file(path)

    def test_bad_content_names_path_and_field(self, tmp_path: Path) -> None:
        """A file with a bad value gives an error naming the file and the field."""
        path = tmp_path / "filter.json"
        path.write_text('{"sources": {"falco": {"minSeverity": "loud"}}}')
        with pytest.raises(rules.FilterConfigError) as caught:
            rules.load_filter_file(str(path))
        assert f"{path}: sources.falco.minSeverity: unknown severity 'loud'" in str(caught.value)


class TestEvaluate:
    @pytest.mark.parametrize("case", DROP_CASES, ids=[case.reason for case in DROP_CASES])
    def test_drop_reason(self, case: DropCase) -> None:
        """Each rule drops a finding it matches, with its own reason."""
        assert case.reason == rules.evaluate(parse(case.config), case.finding)

    def test_cases_cover_every_reason(self) -> None:
        """Every declared drop reason is exercised above, and no other."""
        assert rules.DROP_REASONS == {case.reason for case in DROP_CASES}

    def test_empty_config_passes(self) -> None:
        """Without rules every finding passes."""
        assert None is rules.evaluate(rules.FilterConfig.empty(), finding())

    def test_other_sources_pass(self) -> None:
        """A source without an entry is not filtered."""
        config = parse(source_rules(enabled=False))
        assert None is rules.evaluate(config, finding(source="audit"))

    def test_matching_rules_pass(self) -> None:
        """A finding that satisfies every rule of its source passes."""
        config = parse(ORIGINAL_SAMPLE)
        assert None is rules.evaluate(config, finding())

    def test_min_severity_is_inclusive(self) -> None:
        """A finding exactly at minSeverity passes."""
        assert None is rules.evaluate(parse(source_rules(minSeverity="high")), finding())

    def test_include_severity_overrides_min_severity(self) -> None:
        """With includeSeverity set, minSeverity is ignored, as in the original."""
        config = parse(source_rules(minSeverity="CRITICAL", includeSeverity=["LOW", "HIGH"]))
        assert None is rules.evaluate(config, finding())

    def test_exclude_wins_over_include(self) -> None:
        """A value both excluded and included is dropped as excluded."""
        config = parse(source_rules(excludeKinds=["Pod"], includeKinds=["Pod"]))
        assert "exclude_kind" == rules.evaluate(config, finding())

    def test_checks_run_in_original_order(self) -> None:
        """A disabled source wins, then the global filter, then severity, then the rest."""
        everything = {
            "globalNamespaceFilter": {"enabled": True, "includedNamespaces": ["x"]},
            **source_rules(minSeverity="CRITICAL", excludeKinds=["Pod"]),
        }
        assert "global_include_namespace" == rules.evaluate(parse(everything), finding())
        everything["sources"]["falco"]["enabled"] = False
        assert "source_disabled" == rules.evaluate(parse(everything), finding())
        del everything["globalNamespaceFilter"]
        everything["sources"]["falco"]["enabled"] = True
        assert "min_severity" == rules.evaluate(parse(everything), finding())

    def test_expression_runs_before_the_source_rules(self) -> None:
        """A false expression wins over every per-source rule; a true one lets them run."""
        config = {"expression": "is_critical", **source_rules(enabled=False)}
        assert "expression_filtered" == rules.evaluate(parse(config), finding())
        config["expression"] = "is_high"
        assert "source_disabled" == rules.evaluate(parse(config), finding())

    @pytest.mark.parametrize("text", ["", "  ", None])
    def test_empty_expression_is_none(self, text: str | None) -> None:
        """An empty expression (Go's zero value) or null filters nothing."""
        config = parse({"expression": text})
        assert config.expression is None
        assert None is rules.evaluate(config, finding())

    def test_disabled_global_filter_is_ignored(self) -> None:
        """Global namespace lists apply only when `enabled` is true."""
        config = parse({"globalNamespaceFilter": {"excludedNamespaces": ["production"]}})
        assert None is rules.evaluate(config, finding())

    def test_global_filter_applies_to_unlisted_sources(self) -> None:
        """The global namespace filter applies to sources that have no entry of their own."""
        config = parse({"globalNamespaceFilter": {"enabled": True, "excludedNamespaces": ["p"]}})
        dropped = finding(source="audit", resource=ResourceRef(kind="Pod", namespace="p"))
        assert "global_exclude_namespace" == rules.evaluate(config, dropped)

    def test_cluster_scoped_dropped_by_include_list(self) -> None:
        """A finding without a namespace is not in a namespace include list."""
        config = parse(source_rules(includeNamespaces=["production"]))
        assert "include_namespace" == rules.evaluate(config, cluster_scoped())

    def test_cluster_scoped_kept_when_empty_namespace_listed(self) -> None:
        """Listing "" in an include list keeps findings without a namespace."""
        config = parse(source_rules(includeNamespaces=["production", ""]))
        assert None is rules.evaluate(config, cluster_scoped())

    def test_cluster_scoped_passes_exclude_list(self) -> None:
        """Exclude lists do not drop findings without a namespace."""
        config = parse({"globalNamespaceFilter": {"enabled": True, "excludedNamespaces": ["a"]}})
        assert None is rules.evaluate(config, cluster_scoped())

    def test_finding_without_resource_dropped_by_kind_include(self) -> None:
        """A finding with no resource has kind "", which no kind include list holds."""
        config = parse(source_rules(includeKinds=["Pod"]))
        assert "include_kind" == rules.evaluate(config, finding(resource=None))

    @pytest.mark.parametrize(
        "details",
        [
            {"policy": "Disallow-Latest-Tag"},
            {"rule": "other", "policy": "disallow-latest-tag"},
            {"checkID": "disallow-latest-tag"},
            {"vulnerabilityID": "DISALLOW-LATEST-TAG"},
        ],
    )
    def test_exclude_rules_match_any_rule_field(self, details: dict[str, str]) -> None:
        """excludeRules matches the rule, policy, check or vulnerability id, in any case."""
        config = parse(source_rules(excludeRules=["disallow-latest-tag"]))
        assert "exclude_rule" == rules.evaluate(config, finding(details=details))

    def test_exclude_rules_ignore_findings_without_rule(self) -> None:
        """A finding without any rule name is not dropped by excludeRules."""
        config = parse(source_rules(excludeRules=["disallow-latest-tag"]))
        assert None is rules.evaluate(config, finding(details={"rule": 3}))

    def test_severity_case_insensitive_in_include(self) -> None:
        """includeSeverity matches whatever case the config used."""
        config = parse(source_rules(includeSeverity=["hIgH"]))
        assert None is rules.evaluate(config, finding())
