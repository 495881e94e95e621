"""The Observation a create sends: body, times, namespace, and the bounds on what is stored."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.harness.findings import sample_finding
from zenwatcher.observation import (
    DETAILS_TRUNCATED,
    MAX_DETAIL_LIST_ITEMS,
    MAX_DETAIL_STRING_CHARS,
    bounded_details,
    clip,
    observation_namespace,
    to_observation,
)

NOW = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


class TestObservationBody:
    def test_body(self) -> None:
        """The create body carries spec, labels and a first status."""
        body = to_observation(sample_finding(), namespace="default", now=NOW, ttl_seconds=3600)
        assert "zen.kube-zen.io/v1alpha1" == body["apiVersion"]
        assert {
            "zen.kube-zen.io/source": "falco",
            "zen.kube-zen.io/severity": "high",
            "zen.kube-zen.io/category": "security",
            "zen.kube-zen.io/event-type": "runtime_detection",
            "zen.kube-zen.io/phase": "open",
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
            sample_finding(detected_at=tool_time), namespace="d", now=NOW, ttl_seconds=60
        )
        assert "2020-01-01T00:00:00Z" == body["spec"]["detectedAt"]

    def test_namespace_falls_back_to_watcher_namespace(self) -> None:
        """Findings without a namespace go to the watcher's own."""
        finding = sample_finding(resource=None)
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
