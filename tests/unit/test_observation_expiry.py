"""When an Observation expires: TTL, the time it counts from, and what never expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from zenwatcher import settings
from zenwatcher.observation import (
    LABEL_ORIGIN,
    NEVER,
    REASON_RESOLVED,
    expired_reason,
    expiry_of,
    ttl_of,
)

CREATED = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
LAST_SEEN = datetime(2026, 1, 3, 12, 0, 0, tzinfo=UTC)
DEFAULT_TTL = 7 * 86400


def _observation(
    *,
    created: object = "2026-01-01T00:00:00Z",
    last_seen: object = None,
    ttl: object = None,
    status: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "falco-0123456789abcdef", "namespace": "web"},
        "spec": {"source": "falco"},
    }
    if created is not None:
        body["metadata"]["creationTimestamp"] = created
    if ttl is not None:
        body["spec"]["ttlSecondsAfterCreation"] = ttl
    if status:
        body["status"] = {"count": 3}
        if last_seen is not None:
            body["status"]["lastSeen"] = last_seen
    return body


def _report_observation(
    *, phase: str | None, last_seen: str | None, resolved_at: str | None = None
) -> dict[str, Any]:
    body = _observation(last_seen=last_seen)
    body["metadata"]["labels"] = {LABEL_ORIGIN: "policyreport.web.polr-1"}
    for key, value in (("phase", phase), ("resolvedAt", resolved_at)):
        if value is not None:
            body["status"][key] = value
    return body


class TestExpiryOf:
    def test_counts_from_last_seen(self) -> None:
        """With a lastSeen, expiry is lastSeen + the Observation's own TTL."""
        observation = _observation(last_seen="2026-01-03T12:00:00Z", ttl=3600)
        assert LAST_SEEN + timedelta(hours=1) == expiry_of(observation, default_ttl=DEFAULT_TTL)

    def test_falls_back_to_creation_without_last_seen(self) -> None:
        """A status without lastSeen counts from metadata.creationTimestamp."""
        observation = _observation(ttl=3600)
        assert CREATED + timedelta(hours=1) == expiry_of(observation, default_ttl=DEFAULT_TTL)

    def test_falls_back_to_creation_without_status(self) -> None:
        """An Observation whose status was never written counts from its creation."""
        observation = _observation(ttl=3600, status=False)
        assert CREATED + timedelta(hours=1) == expiry_of(observation, default_ttl=DEFAULT_TTL)

    def test_empty_last_seen_is_missing(self) -> None:
        """An empty lastSeen string is treated as no lastSeen at all."""
        observation = _observation(last_seen="", ttl=3600)
        assert CREATED + timedelta(hours=1) == expiry_of(observation, default_ttl=DEFAULT_TTL)

    def test_last_seen_in_nanoseconds(self) -> None:
        """Sub-microsecond fractions in lastSeen still parse."""
        observation = _observation(last_seen="2026-01-03T12:00:00.123456789Z", ttl=60)
        expected = LAST_SEEN + timedelta(seconds=60, microseconds=123456)
        assert expected == expiry_of(observation, default_ttl=DEFAULT_TTL)

    def test_default_ttl_when_spec_has_none(self) -> None:
        """No spec.ttlSecondsAfterCreation: the configured default applies."""
        observation = _observation(last_seen="2026-01-03T12:00:00Z")
        assert LAST_SEEN + timedelta(seconds=7200) == expiry_of(observation, default_ttl=7200)

    def test_unparseable_last_seen_never_expires(self) -> None:
        """A lastSeen that is not a time gives no expiry, not a fallback to creation."""
        observation = _observation(last_seen="yesterday", ttl=60)
        assert expiry_of(observation, default_ttl=DEFAULT_TTL) is None

    @pytest.mark.parametrize("created", [None, "", "not a time", {"seconds": 1}])
    def test_unusable_creation_never_expires(self, created: object) -> None:
        """Without a lastSeen, a missing or unparseable creationTimestamp gives no expiry."""
        observation = _observation(created=created, ttl=60, status=False)
        assert expiry_of(observation, default_ttl=DEFAULT_TTL) is None

    def test_open_report_finding_never_expires(self) -> None:
        """A report-derived Observation still Open is the report controller's: its lastSeen
        does not move while the report keeps it, so a week-old lastSeen is not an expiry."""
        observation = _report_observation(phase="Open", last_seen="2026-01-03T12:00:00Z")
        assert NEVER == expiry_of(observation, default_ttl=60)
        far_later = LAST_SEEN + timedelta(days=3650)
        assert expired_reason(observation, now=far_later, default_ttl=60) is None

    def test_report_finding_without_phase_expires_from_creation(self) -> None:
        """Created, but its status never written (its term ended first): not known Open to
        anyone, so it expires like any other (the ledger reopens it while its report has it)."""
        observation = _report_observation(phase=None, last_seen=None)
        assert CREATED + timedelta(seconds=60) == expiry_of(observation, default_ttl=60)

    def test_resolved_report_finding_counts_from_resolution(self) -> None:
        """Resolved: the TTL counts from resolvedAt, not from the older lastSeen."""
        observation = _report_observation(
            phase="Resolved", last_seen="2026-01-03T12:00:00Z", resolved_at="2026-02-01T00:00:00Z"
        )
        resolved = datetime(2026, 2, 1, tzinfo=UTC)
        assert resolved + timedelta(hours=1) == expiry_of(observation, default_ttl=3600)
        assert REASON_RESOLVED == expired_reason(
            observation, now=resolved + timedelta(hours=2), default_ttl=3600
        )

    def test_resolved_without_resolved_at_counts_from_last_seen(self) -> None:
        observation = _report_observation(phase="Resolved", last_seen="2026-01-03T12:00:00Z")
        assert LAST_SEEN + timedelta(hours=1) == expiry_of(observation, default_ttl=3600)

    def test_webhook_finding_ignores_phase(self) -> None:
        """Without the origin label a status phase means nothing to GC."""
        observation = _observation(last_seen="2026-01-03T12:00:00Z", ttl=3600)
        observation["status"]["phase"] = "Open"
        assert LAST_SEEN + timedelta(hours=1) == expiry_of(observation, default_ttl=DEFAULT_TTL)

    @pytest.mark.parametrize("section", ["metadata", "spec", "status"])
    def test_malformed_sections_do_not_raise(self, section: str) -> None:
        """A section that is not an object is treated as empty."""
        observation = _observation(last_seen="2026-01-03T12:00:00Z", ttl=60)
        observation[section] = ["junk"]
        expiry_of(observation, default_ttl=DEFAULT_TTL)


class TestTtlOf:
    def test_own_ttl_wins(self) -> None:
        """spec.ttlSecondsAfterCreation overrides the default."""
        assert 600 == ttl_of(_observation(ttl=600), default_ttl=DEFAULT_TTL)

    def test_default_without_own(self) -> None:
        """No TTL in the spec: the default."""
        assert DEFAULT_TTL == ttl_of(_observation(), default_ttl=DEFAULT_TTL)

    @pytest.mark.parametrize("ttl", ["3600", True, None, [60]])
    def test_non_numbers_use_the_default(self, ttl: object) -> None:
        """A TTL that is not a number (a bool is not one) falls back to the default."""
        assert 900 == ttl_of(_observation(ttl=ttl), default_ttl=900)

    @pytest.mark.parametrize(
        ("ttl", "expected"),
        [
            (1, settings.TTL_MIN_SECONDS),
            (-5, settings.TTL_MIN_SECONDS),
            (10**12, settings.TTL_MAX_SECONDS),
            (90.7, 90),
        ],
    )
    def test_own_ttl_is_clamped(self, ttl: float, expected: int) -> None:
        """The Observation's TTL is clamped to [60 s, 1 year], as settings clamp the default."""
        assert expected == ttl_of(_observation(ttl=ttl), default_ttl=DEFAULT_TTL)

    @pytest.mark.parametrize(
        ("default", "expected"),
        [(0, settings.TTL_MIN_SECONDS), (10**9, settings.TTL_MAX_SECONDS)],
    )
    def test_default_ttl_is_clamped(self, default: int, expected: int) -> None:
        """The default TTL is clamped the same way."""
        assert expected == ttl_of(_observation(), default_ttl=default)


class TestExpiredReason:
    def test_expired_by_last_seen(self) -> None:
        """Past lastSeen + TTL: the reason names lastSeen."""
        observation = _observation(last_seen="2026-01-03T12:00:00Z", ttl=3600)
        now = LAST_SEEN + timedelta(hours=2)
        assert "ttl_last_seen" == expired_reason(observation, now=now, default_ttl=DEFAULT_TTL)

    def test_expired_by_creation(self) -> None:
        """Without lastSeen, past creation + TTL: the reason names creation."""
        observation = _observation(ttl=60, status=False)
        now = CREATED + timedelta(minutes=2)
        assert "ttl_created" == expired_reason(observation, now=now, default_ttl=DEFAULT_TTL)

    def test_recent_last_seen_keeps_an_old_observation(self) -> None:
        """Created long ago but seen recently: not expired, though creation + TTL has passed."""
        observation = _observation(last_seen="2026-01-03T12:00:00Z", ttl=3600)
        now = LAST_SEEN + timedelta(minutes=30)
        assert expired_reason(observation, now=now, default_ttl=DEFAULT_TTL) is None

    def test_expiry_instant_counts_as_expired(self) -> None:
        """At exactly lastSeen + TTL the Observation has expired."""
        observation = _observation(last_seen="2026-01-03T12:00:00Z", ttl=3600)
        now = LAST_SEEN + timedelta(hours=1)
        assert "ttl_last_seen" == expired_reason(observation, now=now, default_ttl=DEFAULT_TTL)

    def test_one_second_before_is_not_expired(self) -> None:
        """A second before lastSeen + TTL the Observation is kept."""
        observation = _observation(last_seen="2026-01-03T12:00:00Z", ttl=3600)
        now = LAST_SEEN + timedelta(seconds=3599)
        assert expired_reason(observation, now=now, default_ttl=DEFAULT_TTL) is None

    def test_clamped_ttl_applies(self) -> None:
        """A TTL below the minimum counts as 60 s, so 30 s after lastSeen is not yet expired."""
        observation = _observation(last_seen="2026-01-03T12:00:00Z", ttl=1)
        now = LAST_SEEN + timedelta(seconds=30)
        assert expired_reason(observation, now=now, default_ttl=DEFAULT_TTL) is None

    def test_bad_timestamp_is_never_expired(self) -> None:
        """However late it is, an unparseable lastSeen is never expired."""
        observation = _observation(last_seen="13/45/2020", ttl=60)
        now = datetime(2100, 1, 1, tzinfo=UTC)
        assert expired_reason(observation, now=now, default_ttl=DEFAULT_TTL) is None

    def test_offset_times_compare_in_utc(self) -> None:
        """A lastSeen written with a +02:00 offset is compared as the same instant in UTC."""
        observation = _observation(last_seen="2026-01-03T14:00:00+02:00", ttl=3600)
        now = LAST_SEEN + timedelta(seconds=3599)
        assert expired_reason(observation, now=now, default_ttl=DEFAULT_TTL) is None
