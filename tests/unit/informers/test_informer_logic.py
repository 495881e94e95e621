"""The pure parts of informers: resource paths, watch timeouts, watch-event decoding, keys."""

from __future__ import annotations

import random
from typing import Any

import pytest

from zenwatcher.informers import informer
from zenwatcher.kube import discovery, errors, watching
from zenwatcher.mapping.reports.kinds import REPORT_KINDS, ReportKind

POLICY_REPORT = REPORT_KINDS[0]
CLUSTER_POLICY_REPORT = REPORT_KINDS[1]
EXPIRED = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": "too old resource version: 12 (345)",
    "reason": "Expired",
    "code": 410,
}


def _configmap(name: str, namespace: str | None = "ns1", rv: str = "7") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "resourceVersion": rv}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}


class TestResourcePath:
    def test_namespaced_collection_of_a_group(self) -> None:
        """A namespace puts the collection under /namespaces/{ns}/."""
        assert "/apis/wgpolicyk8s.io/v1alpha2/namespaces/team-a/policyreports" == (
            discovery.resource_path("wgpolicyk8s.io", "v1alpha2", "policyreports", "team-a")
        )

    def test_cluster_wide_collection(self) -> None:
        """No namespace means the collection across the cluster."""
        assert "/apis/wgpolicyk8s.io/v1alpha2/policyreports" == (
            discovery.resource_path("wgpolicyk8s.io", "v1alpha2", "policyreports", None)
        )

    def test_core_group_lives_under_api(self) -> None:
        """The core group ("") is served under /api, not /apis."""
        assert "/api/v1/namespaces/default/configmaps" == (
            discovery.resource_path("", "v1", "configmaps", "default")
        )
        assert "/api/v1" == discovery.group_version_path("", "v1")


class TestKindPaths:
    def test_namespaced_kind_one_path_per_namespace(self) -> None:
        """WATCH_NAMESPACE scopes a namespaced kind to one informer path per namespace."""
        assert (
            "/apis/wgpolicyk8s.io/v1alpha2/namespaces/a/policyreports",
            "/apis/wgpolicyk8s.io/v1alpha2/namespaces/b/policyreports",
        ) == discovery.kind_paths(POLICY_REPORT, ["a", "b"])

    def test_no_namespaces_means_cluster_wide(self) -> None:
        """An empty namespace list watches the whole cluster with one path."""
        assert ("/apis/wgpolicyk8s.io/v1alpha2/policyreports",) == discovery.kind_paths(
            POLICY_REPORT, []
        )

    def test_cluster_scoped_kind_ignores_namespaces(self) -> None:
        """A cluster-scoped kind has one path whatever the namespaces."""
        assert ("/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports",) == discovery.kind_paths(
            CLUSTER_POLICY_REPORT, ["a", "b"]
        )

    def test_kind_from_its_fields(self) -> None:
        """Any ReportKind works, including one built by hand."""
        kind = ReportKind("example.com", "v1", "Widget", "widgets", True)
        assert ("/apis/example.com/v1/namespaces/x/widgets",) == discovery.kind_paths(kind, ["x"])


class TestWatchTimeout:
    def test_draws_stay_within_bounds_and_spread(self) -> None:
        """Server timeouts are integers in [low, high], and not all the same."""
        rng = random.Random(42)
        draws = [watching.watch_timeout((300, 600), rng=rng) for _ in range(500)]
        assert set() == {d for d in draws if not 300 <= d <= 600}
        assert len(set(draws)) > 100

    def test_both_ends_are_reachable(self) -> None:
        """The range is inclusive, like client-go's [min, max]."""
        rng = random.Random(7)
        draws = {watching.watch_timeout((2, 3), rng=rng) for _ in range(100)}
        assert {2, 3} == draws

    def test_a_single_value_range(self) -> None:
        """low == high pins the timeout (tests use this)."""
        assert 5 == watching.watch_timeout((5, 5))

    @pytest.mark.parametrize("bounds", [(0, 10), (10, 5), (-1, 3)])
    def test_bad_ranges_are_refused(self, bounds: tuple[int, int]) -> None:
        """A zero, negative or inverted range is a configuration error."""
        with pytest.raises(ValueError, match="watch timeout range"):
            watching.watch_timeout(bounds)


class TestDecodeEvent:
    @pytest.mark.parametrize("event_type", ["ADDED", "MODIFIED", "DELETED"])
    def test_object_events(self, event_type: str) -> None:
        """Object events keep their type and object."""
        obj = _configmap("a")
        event = watching.decode_event({"type": event_type, "object": obj})
        assert watching.WatchEvent(type=event_type, object=obj) == event  # type: ignore[arg-type]
        assert event is not None
        assert "7" == event.resource_version

    def test_bookmark_carries_a_resource_version(self) -> None:
        """A BOOKMARK is decoded (not delivered later), so its resourceVersion can be kept."""
        line = {
            "type": "BOOKMARK",
            "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "99"}},
        }
        event = watching.decode_event(line)
        assert event is not None
        assert ("BOOKMARK", "99") == (event.type, event.resource_version)

    def test_error_410_raises_gone(self) -> None:
        """An in-stream ERROR with code 410 is Gone: the caller relists."""
        with pytest.raises(errors.Gone) as caught:
            watching.decode_event({"type": "ERROR", "object": EXPIRED})
        assert (410, "Expired") == (caught.value.status, caught.value.reason)

    def test_expired_reason_without_code_is_gone(self) -> None:
        """A Status that says Expired but has no code still means 410."""
        status = {k: v for k, v in EXPIRED.items() if k != "code"}
        with pytest.raises(errors.Gone):
            watching.decode_event({"type": "ERROR", "object": status})

    @pytest.mark.parametrize(
        ("code", "expected"),
        [
            (500, errors.ApiError),
            (429, errors.ApiError),
            (404, errors.NotFound),
            (403, errors.Forbidden),
        ],
    )
    def test_other_errors_raise_their_status(
        self, code: int, expected: type[errors.ApiError]
    ) -> None:
        """Other ERROR events raise the ApiError for their code, never Gone."""
        status = {"kind": "Status", "code": code, "reason": "Whatever", "message": "boom"}
        with pytest.raises(expected) as caught:
            watching.decode_event({"type": "ERROR", "object": status})
        assert code == caught.value.status
        assert not isinstance(caught.value, errors.Gone)

    def test_error_without_a_status_is_an_internal_error(self) -> None:
        """A malformed ERROR event is a 500, retried with backoff."""
        with pytest.raises(errors.ApiError) as caught:
            watching.decode_event({"type": "ERROR", "object": "garbage"})
        assert 500 == caught.value.status

    @pytest.mark.parametrize(
        "line",
        [
            {"type": "SOMETHING", "object": {}},
            {"type": "ADDED"},
            {"type": "ADDED", "object": []},
            {},
        ],
    )
    def test_unknown_lines_are_skipped(self, line: dict[str, Any]) -> None:
        """A line we do not understand decodes to None (logged and skipped by the stream)."""
        assert watching.decode_event(line) is None


class TestKeys:
    def test_object_key_of_a_namespaced_object(self) -> None:
        """(namespace, name) identifies an object for on_listed."""
        assert ("ns1", "a") == informer.object_key(_configmap("a"))

    def test_object_key_of_a_cluster_scoped_object(self) -> None:
        """Cluster-scoped objects have "" as namespace."""
        assert ("", "a") == informer.object_key(_configmap("a", namespace=None))

    def test_resource_version_of_a_list_and_of_nothing(self) -> None:
        """The list's metadata.resourceVersion, or "" when the server sent none."""
        assert "12" == watching.resource_version_of({"metadata": {"resourceVersion": "12"}})
        assert "" == watching.resource_version_of({"items": []})
