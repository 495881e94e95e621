"""Finding identity, Observation names and the Observation body."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from zenwatcher.finding import (
    Category,
    Finding,
    ResourceRef,
    Severity,
    fingerprint_of,
    name_for,
    slugify,
)
from zenwatcher.observation import (
    DETAILS_TRUNCATED,
    MAX_DETAIL_LIST_ITEMS,
    MAX_DETAIL_STRING_CHARS,
    bounded_details,
    clip,
    observation_namespace,
    to_observation,
)

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
NOW = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def _finding(**changes: object) -> Finding:
    base = Finding(
        source="falco",
        category=Category.SECURITY,
        severity=Severity.HIGH,
        event_type="runtime_detection",
        identity=("Terminal shell in container", "default", "web-1", "abc123"),
        resource=ResourceRef(kind="Pod", name="web-1", namespace="default"),
        title="t",
        message="m",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


class TestName:
    def test_deterministic(self) -> None:
        """The same identity always gives the same name."""
        assert _finding().name == _finding().name

    def test_shape(self) -> None:
        """`<source>-<16 hex>`."""
        assert re.fullmatch(r"falco-[0-9a-f]{16}", _finding().name)

    def test_volatile_fields_do_not_change_it(self) -> None:
        """Times, text, severity and details are not identity."""
        volatile = _finding(
            title="other",
            message="other",
            details={"pid": 7},
            detected_at=NOW,
            severity=Severity.LOW,
        )
        assert _finding().name == volatile.name

    def test_identity_encoding_is_unambiguous(self) -> None:
        """("a b", "c") and ("a", "b c") are different findings."""
        assert _finding(identity=("a b", "c")).name != _finding(identity=("a", "b c")).name

    @given(st.text(max_size=80), st.lists(st.text(max_size=30), max_size=6))
    def test_always_a_valid_dns_name(self, source: str, identity: list[str]) -> None:
        """Any source text and identity give a valid DNS-1123 subdomain of at most 63 chars."""
        name = name_for(slugify(source), fingerprint_of(source, tuple(identity)))
        assert DNS_SUBDOMAIN.match(name)
        assert len(name) <= 63

    @given(st.sets(st.tuples(st.text(max_size=12), st.text(max_size=12)), min_size=2, max_size=200))
    def test_different_findings_get_different_names(self, identities: set[tuple[str, str]]) -> None:
        """Distinct identities never share a name in practice (64 bits of sha256)."""
        names = {name_for("falco", fingerprint_of("falco", ident)) for ident in identities}
        assert len(identities) == len(names)


class TestSlug:
    def test_slugify(self) -> None:
        """Tool names become `[a-z0-9-]` slugs."""
        assert "kube-bench" == slugify("Kube Bench")
        assert "unknown" == slugify("___")


class TestObservationBody:
    def test_body(self) -> None:
        """The create body carries spec, labels and a first status."""
        body = to_observation(_finding(), namespace="default", now=NOW, ttl_seconds=3600)
        assert "zen.kube-zen.io/v1alpha1" == body["apiVersion"]
        assert {
            "zen.kube-zen.io/source": "falco",
            "zen.kube-zen.io/severity": "high",
            "zen.kube-zen.io/category": "security",
            "zen.kube-zen.io/event-type": "runtime_detection",
        } == body["metadata"]["labels"]
        assert "2026-05-06T07:08:09Z" == body["spec"]["detectedAt"]
        assert {"kind": "Pod", "name": "web-1", "namespace": "default"} == body["spec"]["resource"]
        assert {
            "count": 1,
            "firstSeen": "2026-05-06T07:08:09Z",
            "lastSeen": "2026-05-06T07:08:09Z",
        } == body["status"]

    def test_tool_time_wins_for_detected_at(self) -> None:
        """detectedAt is the tool's own time when it gave one."""
        tool_time = datetime(2020, 1, 1, tzinfo=UTC)
        body = to_observation(
            _finding(detected_at=tool_time), namespace="d", now=NOW, ttl_seconds=60
        )
        assert "2020-01-01T00:00:00Z" == body["spec"]["detectedAt"]

    def test_namespace_falls_back_to_watcher_namespace(self) -> None:
        """Findings without a namespace go to the watcher's own."""
        finding = _finding(resource=None)
        assert "zen-system" == observation_namespace(finding, default_namespace="zen-system")


class TestBounds:
    def test_clip_marks_the_cut(self) -> None:
        assert "abc" == clip("abc", 3)
        assert "ab…" == clip("abcd", 3)

    def test_details_that_fit_are_untouched(self) -> None:
        details = {"rule": "r", "fields": {"a": "b"}}
        assert details is bounded_details(details)

    def test_long_strings_and_lists_are_clipped(self) -> None:
        details = {"big": "x" * 300_000, "many": list(range(1000)), "n": 1}
        bounded = bounded_details(details)
        assert MAX_DETAIL_STRING_CHARS == len(bounded["big"])
        assert MAX_DETAIL_LIST_ITEMS == len(bounded["many"])
        assert (1, True) == (bounded["n"], bounded[DETAILS_TRUNCATED])

    def test_details_too_large_even_clipped_keep_their_keys(self) -> None:
        details = {f"k{i:04d}": "y" * 4000 for i in range(200)}
        bounded = bounded_details(details)
        assert {DETAILS_TRUNCATED: True, "keys": sorted(details)[:100]} == bounded
