"""Which watch events of the Lease wake a waiting candidate, and the path it watches."""

from __future__ import annotations

from typing import Any

import pytest

from zenwatcher.election.release_watch import is_release, named_lease_path
from zenwatcher.kube.watching import EventType, WatchEvent


def lease(holder: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"leaseDurationSeconds": 15}
    if holder is not None:
        spec["holderIdentity"] = holder
    return {"metadata": {"name": "zen", "resourceVersion": "7"}, "spec": spec}


@pytest.mark.parametrize(
    ("kind", "obj", "wakes"),
    [
        ("MODIFIED", lease(""), True),  # client-go's release record: no holder
        ("MODIFIED", lease(None), True),
        ("DELETED", lease("pod-a"), True),  # gone: the candidate may create it
        ("MODIFIED", lease("pod-a"), False),  # a renewal
        ("ADDED", lease("pod-b"), False),
        ("BOOKMARK", {"metadata": {"resourceVersion": "9"}}, False),
    ],
)
def test_only_a_lease_nobody_holds_wakes(kind: EventType, obj: dict[str, Any], wakes: bool) -> None:
    assert wakes == is_release(WatchEvent(type=kind, object=obj))


def test_the_watch_names_one_lease() -> None:
    assert (
        "/apis/coordination.k8s.io/v1/namespaces/zen-system/leases"
        "?fieldSelector=metadata.name%3Dzen-watcher-leader-election"
    ) == named_lease_path("zen-system", "zen-watcher-leader-election")
