"""Label selectors: the API server's grammar accepted, anything else refused with the reason."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zenwatcher.selector import Requirement, SelectorError, parse


class TestParse:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("env=prod", [Requirement("env", "=", frozenset({"prod"}))]),
            ("env==prod", [Requirement("env", "=", frozenset({"prod"}))]),
            ("env != prod", [Requirement("env", "!=", frozenset({"prod"}))]),
            ("tier in (a, b)", [Requirement("tier", "in", frozenset({"a", "b"}))]),
            ("tier notin (a)", [Requirement("tier", "notin", frozenset({"a"}))]),
            ("zen.kube-zen.io/shard", [Requirement("zen.kube-zen.io/shard", "exists")]),
            ("!legacy", [Requirement("legacy", "!")]),
            ("env=", [Requirement("env", "=", frozenset({""}))]),
        ],
    )
    def test_each_operator(self, text: str, expected: list[Requirement]) -> None:
        """Every operator of the server's grammar, `==` read as `=`."""
        assert tuple(expected) == parse(text).requirements

    def test_commas_inside_a_set_do_not_split(self) -> None:
        """Requirements split on commas outside parentheses only."""
        selector = parse("env in (prod,staging),team=sec, !legacy")
        assert ["in", "=", "!"] == [r.operator for r in selector.requirements]
        assert frozenset({"prod", "staging"}) == selector.requirements[0].values

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("env=prod,", "empty requirement"),
            (",env=prod", "empty requirement"),
            ("env in (a,b", "unclosed"),
            ("env in a,b)", "unbalanced"),
            ("env in ()", "at least one value"),
            ("env in ((a))", "nested"),
            ("Bad Key=x", "not a requirement"),
            ("-env=x", "not a label key"),
            ("env=not valid!", "not a label value"),
            ("env=" + "x" * 64, "not a label value"),
            ("Bad_Prefix/env=x", "prefix"),
            ("env>3", "not a label key"),
        ],
    )
    def test_malformed_selectors_say_why(self, text: str, reason: str) -> None:
        with pytest.raises(SelectorError, match=reason):
            parse(text)

    @given(st.text(max_size=60))
    def test_no_input_crashes_the_parser(self, text: str) -> None:
        """Any text parses or raises SelectorError, nothing else."""
        with contextlib.suppress(SelectorError):
            parse(text)


class TestMatches:
    @pytest.mark.parametrize(
        ("text", "labels", "expected"),
        [
            ("env=prod", {"env": "prod"}, True),
            ("env=prod", {}, False),
            ("env!=prod", {}, True),  # as on the server: no key matches !=
            ("env!=prod", {"env": "prod"}, False),
            ("env in (a,b)", {"env": "b"}, True),
            ("env notin (a,b)", {"env": "b"}, False),
            ("env notin (a,b)", {}, True),
            ("env", {"env": ""}, True),
            ("!env", {"env": ""}, False),
            ("env=prod,team", {"env": "prod"}, False),
            ("", {"anything": "x"}, True),
        ],
    )
    def test_server_semantics(self, text: str, labels: dict[str, str], expected: bool) -> None:
        assert expected == parse(text).matches(labels)
