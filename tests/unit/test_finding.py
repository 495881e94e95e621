"""A finding's identity: its fingerprint and Observation name, and source slugs."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from tests.harness.findings import sample_finding
from zenwatcher.finding import (
    Severity,
    fingerprint_of,
    name_for,
    slugify,
)

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
NOW = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


class TestName:
    def test_deterministic(self) -> None:
        """The same identity always gives the same name."""
        assert sample_finding().name == sample_finding().name

    def test_shape(self) -> None:
        """`<source>-<16 hex>`."""
        assert re.fullmatch(r"falco-[0-9a-f]{16}", sample_finding().name)

    def test_volatile_fields_do_not_change_it(self) -> None:
        """Times, text, severity and details are not identity."""
        volatile = sample_finding(
            title="other",
            message="other",
            details={"pid": 7},
            detected_at=NOW,
            severity=Severity.LOW,
        )
        assert sample_finding().name == volatile.name

    def test_identity_encoding_is_unambiguous(self) -> None:
        """("a b", "c") and ("a", "b c") are different findings."""
        assert (
            sample_finding(identity=("a b", "c")).name != sample_finding(identity=("a", "b c")).name
        )

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
