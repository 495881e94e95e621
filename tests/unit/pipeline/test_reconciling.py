"""The report ledger: what to write when reports appear, change, vanish and come back."""

from __future__ import annotations

import pytest

from zenwatcher.finding import Category, Finding, Origin, ResourceRef, Severity
from zenwatcher.observation import Existing, Phase
from zenwatcher.pipeline.reconciling import Ledger, Resolve

SCOPE = ("PolicyReport", "apps")


class FakeClock:
    """Monotonic seconds that a test steps by hand (grace periods cannot be waited out for real)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(name="ledger")
def _ledger(clock: FakeClock) -> Ledger:
    return Ledger(grace_seconds=30.0, clock=clock)


def finding(rule: str) -> Finding:
    return Finding(
        source="kyverno",
        category=Category.SECURITY,
        severity=Severity.MEDIUM,
        event_type="policy_violation",
        identity=("Pod", "apps", "web", "require-labels", rule),
        resource=ResourceRef(kind="Pod", name="web", namespace="apps"),
        origin=Origin(uid="u1", key="origin-a"),
    )


def seen(ledger: Ledger, *rules: str, origin: str = "origin-a") -> list[str]:
    verdict = ledger.report_seen(
        scope=SCOPE, origin=origin, findings=[(finding(r), "apps") for r in rules]
    )
    return [open_.finding.name for open_ in verdict.opens]


class TestOpening:
    def test_new_findings_are_opened_once(self, ledger: Ledger) -> None:
        """First sight opens; the same report seen again asks for no write."""
        assert [finding("a").name, finding("b").name] == seen(ledger, "a", "b")
        assert [] == seen(ledger, "a", "b")

    def test_known_open_observations_need_no_write(self, ledger: Ledger) -> None:
        """After a restart, findings already Open in the API are not written again."""
        ledger.know(
            finding("a").name,
            Existing(namespace="apps", phase=Phase.OPEN, source="kyverno"),
        )
        verdict = ledger.report_seen(
            scope=SCOPE, origin="origin-a", findings=[(finding("a"), "apps")]
        )
        assert ([], 1) == (verdict.opens, verdict.unchanged)

    def test_resolved_observation_is_reopened(self, ledger: Ledger) -> None:
        """A finding that comes back after being Resolved is opened again."""
        ledger.know(
            finding("a").name,
            Existing(namespace="apps", phase=Phase.RESOLVED, source="kyverno"),
        )
        assert [finding("a").name] == seen(ledger, "a")


class TestResolving:
    def test_fixed_finding_resolves_after_grace(self, ledger: Ledger, clock: FakeClock) -> None:
        """A result that leaves its report is resolved once the grace period has passed."""
        seen(ledger, "a", "b")
        seen(ledger, "a")
        assert [] == ledger.due_resolutions()
        clock.now += 31
        assert [
            Resolve(name=finding("b").name, namespace="apps", source="kyverno")
        ] == ledger.due_resolutions()
        assert [] == ledger.due_resolutions()

    def test_recreated_report_within_grace_does_not_flap(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """trivy deletes and recreates a report: nothing is resolved, nothing rewritten."""
        seen(ledger, "a")
        ledger.report_deleted(scope=SCOPE, origin="origin-a")
        clock.now += 5
        assert [] == seen(ledger, "a")
        clock.now += 60
        assert [] == ledger.due_resolutions()

    def test_empty_report_flap_does_not_flap(self, ledger: Ledger, clock: FakeClock) -> None:
        """A report momentarily empty, then full again: no resolution."""
        seen(ledger, "a")
        seen(ledger)
        clock.now += 10
        seen(ledger, "a")
        clock.now += 60
        assert [] == ledger.due_resolutions()

    def test_finding_wanted_by_another_report_stays_open(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """Two reports with the same finding: deleting one keeps it Open."""
        seen(ledger, "a", origin="origin-a")
        seen(ledger, "a", origin="origin-b")
        ledger.report_deleted(scope=SCOPE, origin="origin-a")
        clock.now += 60
        assert [] == ledger.due_resolutions()

    def test_relist_catches_reports_deleted_while_away(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """A relist that no longer shows a report resolves its findings."""
        seen(ledger, "a", origin="origin-a")
        seen(ledger, "b", origin="origin-b")
        ledger.listed(scope=SCOPE, present={"origin-b"})
        clock.now += 31
        assert [finding("a").name] == [r.name for r in ledger.due_resolutions()]

    def test_orphans_found_after_sync(self, ledger: Ledger, clock: FakeClock) -> None:
        """Open Observations that no report wants after the initial sync get resolved."""
        ledger.know(
            "kyverno-0000000000000000",
            Existing(namespace="apps", phase=Phase.OPEN, source="kyverno"),
        )
        ledger.know(
            finding("a").name,
            Existing(namespace="apps", phase=Phase.OPEN, source="kyverno"),
        )
        seen(ledger, "a")
        ledger.orphans_after_sync()
        clock.now += 31
        assert ["kyverno-0000000000000000"] == [r.name for r in ledger.due_resolutions()]

    def test_resolved_then_back_is_reopened(self, ledger: Ledger, clock: FakeClock) -> None:
        """Resolved by the ledger, then the finding returns: opened again."""
        seen(ledger, "a")
        seen(ledger)
        clock.now += 31
        assert 1 == len(ledger.due_resolutions())
        assert [finding("a").name] == seen(ledger, "a")


class TestMemory:
    def test_resolved_findings_are_forgotten(self, ledger: Ledger, clock: FakeClock) -> None:
        """Once resolved a name leaves the ledger (a long term holds only Open ones), and a
        finding that comes back is opened again."""
        seen(ledger, "a", "b")
        seen(ledger, "b")
        clock.now += 31
        assert [finding("a").name] == [r.name for r in ledger.due_resolutions()]
        assert 1 == len(ledger)
        assert [finding("a").name] == seen(ledger, "a", "b")

    def test_resolved_observations_read_at_start_are_not_kept(self, ledger: Ledger) -> None:
        ledger.know("x", Existing(namespace="apps", phase=Phase.RESOLVED, source="k"))
        ledger.know("y", Existing(namespace="apps", phase=Phase.OPEN, source="k"))
        assert 1 == len(ledger)

    def test_a_failed_open_is_opened_again(self, ledger: Ledger) -> None:
        """The writer could not create it: the next event of its report asks again."""
        assert [finding("a").name] == seen(ledger, "a")
        assert [] == seen(ledger, "a")
        ledger.forget(finding("a").name)
        assert [finding("a").name] == seen(ledger, "a")


class TestNamespaceLeavesScope:
    def test_forgotten_without_resolving_even_after_grace(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        """A namespace leaves a selector's scope: its report origins and their findings are
        forgotten; nothing is resolved, not even what was waiting out its grace."""
        seen(ledger, "a", "b")
        seen(ledger, "c", origin="origin-b")
        ledger.report_deleted(scope=SCOPE, origin="origin-b")  # c starts its grace
        assert 1 == ledger.pending_count()
        assert 1 == ledger.forget_namespace("apps")
        clock.now += 60
        assert [] == ledger.due_resolutions()
        assert 0 == len(ledger)
        assert not ledger.is_wanted(finding("a").name)

    def test_a_namespace_coming_back_is_opened_again(self, ledger: Ledger) -> None:
        """Gained again: its findings are new to the ledger, so its first list opens them
        (the writer turns an Open of an existing Observation into nothing or a reopen)."""
        seen(ledger, "a")
        ledger.forget_namespace("apps")
        assert [finding("a").name] == seen(ledger, "a")

    def test_orphans_of_one_namespace_only(self, ledger: Ledger, clock: FakeClock) -> None:
        """After a namespace's own first list, only its orphans start their grace."""
        ledger.know("in-apps", Existing(namespace="apps", phase=Phase.OPEN, source="kyverno"))
        ledger.know("in-web", Existing(namespace="web", phase=Phase.OPEN, source="kyverno"))
        ledger.orphans_after_sync("apps")
        clock.now += 31
        assert ["in-apps"] == [resolve.name for resolve in ledger.due_resolutions()]

    def test_other_namespaces_and_our_own_kept(self, ledger: Ledger) -> None:
        """Only the namespace that left is forgotten; `observations_too=False` (our own
        namespace, where cluster reports' findings live) keeps its known Observations."""
        ledger.know("mine", Existing(namespace="zen", phase=Phase.OPEN, source="trivy"))
        ledger.know("other", Existing(namespace="web", phase=Phase.OPEN, source="kyverno"))
        ledger.forget_namespace("zen", observations_too=False)
        ledger.forget_namespace("apps")
        assert 2 == len(ledger)
        ledger.forget_namespace("web")
        assert 1 == len(ledger)
