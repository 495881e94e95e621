"""The findings tally: one count per Observation under its labels, moved on change, dropped on
delete or when a relist no longer has it."""

from __future__ import annotations

from typing import Any

from zenwatcher.leader.findings import Tally, current_key
from zenwatcher.observation import LABEL_ORIGIN, LABEL_PHASE, LABEL_SEVERITY, LABEL_SOURCE


def metadata(name: str, *, phase: str | None = "open", origin: bool = True) -> dict[str, Any]:
    labels = {LABEL_SOURCE: "kyverno", LABEL_SEVERITY: "high"}
    if phase is not None:
        labels[LABEL_PHASE] = phase
    if origin:
        labels[LABEL_ORIGIN] = "0123456789abcdef"
    return {
        "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "namespace": "shop", "labels": labels},
    }


OPEN = ("kyverno", "high", "shop", "open")
RESOLVED = ("kyverno", "high", "shop", "resolved")


async def test_changes_move_the_count_and_repeats_do_not_add() -> None:
    tally = Tally()
    scope = tally.scope()
    await scope.on_object(metadata("a"))
    await scope.on_object(metadata("a"))  # a status-only change: same labels
    await scope.on_object(metadata("b"))
    assert {OPEN: 2} == dict(tally.counts)
    await scope.on_object(metadata("a", phase="resolved"))
    assert {OPEN: 1, RESOLVED: 1} == dict(tally.counts)
    await scope.on_deleted(metadata("b"))
    assert {OPEN: 0, RESOLVED: 1} == dict(tally.counts)


async def test_a_relist_drops_what_vanished_while_away() -> None:
    tally = Tally()
    scope = tally.scope()
    for name in ("a", "b", "c"):
        await scope.on_object(metadata(name))
    await scope.on_listed(frozenset({("shop", "a")}))
    assert {OPEN: 1} == dict(tally.counts)


async def test_scopes_share_counts_but_not_objects() -> None:
    """Two namespaces' informers: one's relist does not drop the other's objects."""
    tally = Tally()
    first, second = tally.scope(), tally.scope()
    await first.on_object(metadata("a"))
    await second.on_object(metadata("b"))
    await first.on_listed(frozenset({("shop", "a")}))
    assert {OPEN: 2} == dict(tally.counts)


async def test_dropping_a_namespace_removes_its_series_only() -> None:
    """A namespace left the scope: its series go, at 0 or not; the others' stay."""
    tally = Tally()
    shop, other = tally.scope(), tally.scope()
    await shop.on_object(metadata("a"))
    await shop.on_object(metadata("b", phase="resolved"))
    await shop.on_deleted(metadata("b", phase="resolved"))
    elsewhere = metadata("c")
    elsewhere["metadata"]["namespace"] = "bank"
    await other.on_object(elsewhere)
    tally.drop("shop")
    assert {("kyverno", "high", "bank", "open"): 1} == dict(tally.counts)


def test_key_without_phase_label_follows_the_design() -> None:
    """Written before the label: a report finding is not open, an event finding is."""
    assert RESOLVED == current_key(metadata("a", phase=None))
    assert ("kyverno", "high", "shop", "open") == current_key(
        metadata("a", phase=None, origin=False)
    )
    assert ("unknown", "unknown", "", "open") == current_key({"metadata": {"name": "x"}})
