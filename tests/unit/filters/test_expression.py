"""The filter expression language: every operator and macro, precedence, errors and positions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.harness import filter_cases
from zenwatcher.filters import rules
from zenwatcher.filters.expression import (
    MAX_DEPTH,
    RESOURCE_FIELDS,
    SPEC_FIELDS,
    ExpressionError,
    parse_expression,
)
from zenwatcher.finding import Category, DeferredDetails, Finding, Severity
from zenwatcher.observation import to_observation


def finding(**overrides: Any) -> Finding:
    """A high Falco finding on Pod production/web with a few details; fields overridable."""
    fields: dict[str, Any] = {
        "title": "Terminal shell in container",
        "details": {
            "rule": "Terminal shell in container",
            "k8s.ns.name": "production",  # Falco's output field names hold dots
            "tags": ["container", "mitre_execution", "shell"],
            "count": 5,
            "privileged": True,
            "nested": {"level": {"deep": "yes"}},
            "nothing": None,
        },
    }
    return filter_cases.finding(**{**fields, **overrides})


def matches(text: str, target: Finding | None = None) -> bool:
    return parse_expression(text).matches(target or finding())


class TestOperators:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("spec.source = 'falco'", True),
            ('spec.source = "FALCO"', True),  # strings compare case-insensitively
            ("spec.source = 'audit'", False),
            ("spec.source != 'audit'", True),
            ("spec.source != 'falco'", False),
            ("spec.details.count = 5", True),
            ("spec.details.count = '5.0'", True),  # numbers compare as numbers
            ("spec.details.count != 6", True),
            ("spec.details.privileged = true", True),
            ("spec.details.privileged = FALSE", False),
            ("spec.details.count > 4", True),
            ("spec.details.count > 5", False),
            ("spec.details.count >= 5", True),
            ("spec.details.count < 5.5", True),
            ("spec.details.count <= 4", False),
            ("spec.details.count > -1", True),
            ("spec.eventType IN ['runtime_detection', 'pod_exec']", True),
            ("spec.eventType IN [pod_exec, audit]", False),  # bare words in a list are strings
            ("spec.eventType NOT IN ['pod_exec']", True),
            ("spec.eventType not in ['RUNTIME_DETECTION']", False),
            ("spec.details.count IN [1, 5]", True),
            ("spec.details.count IN []", False),
            ("spec.details.count IN [1, 5,]", True),  # a trailing comma, as the original allows
            ("spec.title CONTAINS 'shell'", True),
            ("spec.title CONTAINS 'SHELL IN'", True),
            ("spec.title CONTAINS 'bash'", False),
            ("spec.details.tags CONTAINS 'shell'", True),  # on a list: an item equals it
            ("spec.details.tags CONTAINS 'she'", False),
            ("spec.title STARTS_WITH 'terminal'", True),
            ("spec.title STARTS_WITH 'shell'", False),
            ("spec.title ENDS_WITH 'Container'", True),
            ("spec.title ENDS_WITH 'terminal'", False),
            ("spec.details.rule EXISTS", True),
            ("spec.details.missing EXISTS", False),
            ("spec.details.nothing EXISTS", False),  # JSON null is absent
            ("spec.details.missing NOT EXISTS", True),
            ("spec.details.rule not exists", False),
        ],
    )
    def test_operator(self, text: str, expected: bool) -> None:
        """Each operator, true and false, case-insensitive keywords."""
        assert expected is matches(text)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("spec.severity > 'medium'", True),
            ("spec.severity > 'high'", False),
            ("spec.severity >= 'HIGH'", True),
            ("spec.severity < 'critical'", True),
            ("spec.severity <= 'medium'", False),
            ("spec.severity >= 'info'", True),
            ("'critical' > spec.severity", True),  # a literal on the left compares by rank too
            ("spec.severity IN ['critical', 'high']", True),
            ("spec.severity = 'High'", True),
        ],
    )
    def test_severities_compare_by_rank(self, text: str, expected: bool) -> None:
        """critical > high > medium > low > info, not alphabetically."""
        assert expected is matches(text)

    def test_every_rank_orders(self) -> None:
        """For every pair of severities, `>=` agrees with the ranks."""
        for level in Severity:
            for other in Severity:
                got = matches(f"spec.severity >= '{other.value}'", finding(severity=level))
                assert got is (level.rank >= other.rank), (level, other)

    def test_missing_fields(self) -> None:
        """A missing field equals nothing and orders with nothing; != and NOT IN hold."""
        assert not matches("spec.details.missing = 'x'")
        assert matches("spec.details.missing != 'x'")
        assert not matches("spec.details.missing > 1")
        assert not matches("spec.details.missing IN ['x']")
        assert matches("spec.details.missing NOT IN ['x']")
        assert not matches("spec.details.missing CONTAINS 'x'")

    def test_escapes_in_strings(self) -> None:
        """Backslash escapes the quote, itself, n and t."""
        target = finding(title='say "it\'s" \\ done')
        assert matches(r"spec.title = 'say \"it\'s\" \\ done'", target)
        assert matches(r'spec.title CONTAINS "\"it"', target)


class TestFields:
    def test_spec_fields_read_what_to_observation_writes(self) -> None:
        """Every spec.<field> the language reads equals the Observation's spec field."""
        target = finding()
        spec = to_observation(
            target, namespace="production", now=datetime.now(UTC), ttl_seconds=60
        )["spec"]
        for name, read in SPEC_FIELDS.items():
            assert spec[name] == read(target), name
        for name, read in RESOURCE_FIELDS.items():
            assert spec["resource"].get(name) == read(target), name

    def test_dotted_detail_keys_and_nested_objects(self) -> None:
        """A detail key with dots is found whole; nested objects are walked."""
        assert matches("spec.details.k8s.ns.name = 'production'")
        assert matches("spec.details.nested.level.deep = 'yes'")
        assert not matches("spec.details.nested.level.shallow EXISTS")
        assert not matches("spec.details.rule.deeper EXISTS")  # a string has no fields

    def test_deferred_details(self) -> None:
        """Details a mapper defers are built when an expression first reads them."""
        built: list[int] = []

        def build() -> dict[str, Any]:
            built.append(1)
            return {"outputFields": {"k8s.ns.name": "production"}}

        target = finding(details=DeferredDetails(build))
        expression = parse_expression("spec.details.outputFields.k8s.ns.name = 'production'")
        assert [] == built
        assert expression.matches(target)
        assert not matches("spec.details.rule EXISTS", target)
        assert [1] == built

    def test_resource_fields(self) -> None:
        """spec.resource.* as to_spec writes them: an empty field is absent."""
        assert matches("spec.resource.namespace = 'production' AND spec.resource.kind = 'pod'")
        assert matches("spec.resource.uid NOT EXISTS")
        assert matches("spec.resource NOT EXISTS", finding(resource=None))
        assert matches("spec.resource.namespace NOT EXISTS", finding(resource=None))

    def test_other_spec_fields(self) -> None:
        """category, eventType, fingerprint and message are readable."""
        target = finding(message="")
        assert matches(f"spec.fingerprint = '{target.fingerprint}'", target)
        assert matches("spec.category = 'security' AND spec.message = ''", target)


class TestMacros:
    @pytest.mark.parametrize(
        ("macro", "severity", "category", "expected"),
        [
            ("is_critical", Severity.CRITICAL, Category.SECURITY, True),
            ("is_critical", Severity.HIGH, Category.SECURITY, False),
            ("is_high", Severity.HIGH, Category.SECURITY, True),
            ("is_high", Severity.CRITICAL, Category.SECURITY, False),  # exactly high, as before
            ("is_security", Severity.LOW, Category.SECURITY, True),
            ("is_security", Severity.LOW, Category.COMPLIANCE, False),
            ("is_compliance", Severity.LOW, Category.COMPLIANCE, True),
            ("IS_COMPLIANCE", Severity.LOW, Category.OPERATIONS, False),
        ],
    )
    def test_macro(
        self, macro: str, severity: Severity, category: Category, expected: bool
    ) -> None:
        assert expected is matches(macro, finding(severity=severity, category=category))


class TestLogic:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("true", True),
            ("false", False),
            ("is_high AND is_security", True),
            ("is_high and is_compliance", False),
            ("is_critical OR is_security", True),
            ("is_critical or is_compliance", False),
            ("NOT is_critical", True),
            ("not not is_critical", False),
            # AND binds tighter than OR: true OR (false AND false)
            ("is_high OR is_critical AND is_compliance", True),
            ("(is_high OR is_critical) AND is_compliance", False),
            # NOT binds tighter than AND: (NOT false) AND true
            ("NOT is_critical AND is_high", True),
            ("NOT (is_critical OR is_high)", False),
            ("NOT spec.source IN ['audit']", True),
            ("((is_high))", True),
            ("is_high AND is_security AND spec.source = 'falco' AND NOT false", True),
        ],
    )
    def test_precedence(self, text: str, expected: bool) -> None:
        """OR < AND < NOT < comparison; parentheses group."""
        assert expected is matches(text)

    def test_long_chains_do_not_recurse(self) -> None:
        """Hundreds of ORed clauses parse and evaluate (flat, not one level per clause)."""
        text = " OR ".join(f"spec.details.count = {index}" for index in range(500))
        assert matches(text)


class TestExplain:
    @pytest.mark.parametrize(
        ("text", "clause", "values"),
        [
            (
                "spec.severity >= 'critical'",
                "spec.severity >= 'critical'",
                {"spec.severity": "high"},
            ),
            (
                "is_security AND spec.resource.namespace IN ['staging'] AND is_high",
                "spec.resource.namespace IN ['staging']",
                {"spec.resource.namespace": "production"},
            ),
            (
                "(is_critical OR spec.source = 'audit') AND is_security",
                "(is_critical OR spec.source = 'audit')",
                {"spec.severity": "high", "spec.source": "falco"},
            ),
            ("NOT is_security", "NOT is_security", {"spec.category": "security"}),
            ("false", "false", {}),
        ],
    )
    def test_deciding_clause(self, text: str, clause: str, values: dict[str, Any]) -> None:
        """A false expression names the clause that made it false and the values it read."""
        expression = parse_expression(text)
        assert not expression.matches(finding())
        explanation = expression.explain(finding())
        assert clause == explanation.clause
        assert values == dict(explanation.values)


class TestErrors:
    @pytest.mark.parametrize(
        ("text", "position", "message"),
        [
            ("", 0, "expected a field, a string, a number or a list, found the end"),
            ("spec.source", 11, "expected an operator after 'spec.source'"),
            ("spec.source =", 13, "expected a field, a string, a number or a list"),
            ("(is_high", 8, "expected ')' to close the '(' at character 1"),
            ("is_high)", 7, "expected AND, OR or the end, found ')'"),
            ("is_high AND", 11, "found the end of the expression"),
            ("is_high is_critical", 8, "expected AND, OR or the end, found 'is_critical'"),
            ("spec.source = 'falco", 14, "unterminated string (no closing ')"),
            ('spec.source = "falco', 14, 'unterminated string (no closing ")'),
            ("spec.details.count = 1x", 21, "malformed number"),
            ("spec.source = #", 14, "unexpected character '#'"),
            ("spec.sevrity = 'high'", 0, "unknown field 'spec.sevrity'"),
            ("severity = 'high'", 0, "unknown field 'severity': quote a string"),
            ("spec.severity >= HIGH", 17, "unknown field 'HIGH': quote a string ('HIGH')"),
            ("metadata.name = 'x'", 0, "unknown field 'metadata.name'"),
            ("spec.resource.owner = 'x'", 0, "unknown field 'spec.resource.owner'"),
            ("spec.source.name = 'x'", 0, "spec.source has no fields"),
            ("spec.detectedAt EXISTS", 0, "set when the Observation is written"),
            ("is_urgent", 0, "unknown macro 'is_urgent'"),
            ("spec.severity >= 'hgh'", 17, "'hgh' is not a severity"),
            ("spec.severity IN ['high', 'urgent']", 17, "'urgent' is not a severity"),
            ("spec.source IN 'falco'", 15, "IN needs a list or a field on its right"),
            ("spec.source = ['falco']", 14, "a list only goes on the right of IN or NOT IN"),
            ("spec.source IN ['a' 'b']", 20, "expected ',' or ']' in the list opened at"),
            ("spec.source IN [['a']]", 16, "expected a value, found '['"),
            ("spec.source NOT CONTAINS 'a'", 16, "expected IN or EXISTS after NOT"),
            ("'a' EXISTS", 0, "EXISTS needs a field on its left"),
            ("NOT", 3, "found the end of the expression"),
            ("(" * (MAX_DEPTH + 5) + "true", MAX_DEPTH + 1, f"nested more than {MAX_DEPTH}"),
        ],
    )
    def test_position_and_message(self, text: str, position: int, message: str) -> None:
        """Every error says where (1-based in the message, 0-based in `position`) and what."""
        with pytest.raises(ExpressionError) as caught:
            parse_expression(text)
        assert position == caught.value.position
        assert str(caught.value).startswith(f"at character {position + 1}: ")
        assert message in str(caught.value)

    def test_too_long(self) -> None:
        """An absurdly long expression is refused before tokenizing."""
        with pytest.raises(ExpressionError, match="longer than"):
            parse_expression("true OR " * 5000 + "true")


_GRAMMAR_PIECES = st.sampled_from(
    [
        "spec.severity",
        "spec.details.rule",
        "spec.resource.namespace",
        "is_critical",
        "is_security",
        "AND",
        "or",
        "NOT",
        "IN",
        "not in",
        "EXISTS",
        "CONTAINS",
        "STARTS_WITH",
        "=",
        "!=",
        ">=",
        "<",
        "(",
        ")",
        "[",
        "]",
        ",",
        "'high'",
        '"x"',
        "'",
        "1",
        "-2.5",
        "true",
        "spec.",
        "foo",
        "\\",
        " ",
    ]
)


class TestNoInputCrashesTheParser:
    @settings(max_examples=400)
    @given(st.text(max_size=80))
    def test_any_text(self, text: str) -> None:
        """Arbitrary text parses or raises ExpressionError, nothing else."""
        self._parse_or_refuse(text)

    @settings(max_examples=1000)
    @given(st.lists(_GRAMMAR_PIECES, max_size=25).map(" ".join))
    def test_grammar_soup(self, text: str) -> None:
        """Near-valid token soup parses or raises ExpressionError; what parses evaluates."""
        self._parse_or_refuse(text)

    @settings(max_examples=300)
    @given(st.lists(_GRAMMAR_PIECES, max_size=15).map(" ".join))
    def test_through_filter_json(self, text: str) -> None:
        """As filter.json's expression: a FilterConfig or a FilterConfigError with a position."""
        try:
            rules.parse_filter_config(json.dumps({"expression": text}))
        except rules.FilterConfigError as error:
            refused: rules.FilterConfigError | None = error
        else:
            return
        assert refused is not None
        assert refused.position is not None
        assert str(refused).startswith(f"expression: at character {refused.position + 1}: ")

    @staticmethod
    def _parse_or_refuse(text: str) -> None:
        try:
            expression = parse_expression(text)
        except ExpressionError as error:
            position = error.position
        else:
            assert expression.matches(finding()) in (True, False)
            expression.explain(finding())
            return
        assert 0 <= position <= len(text)
