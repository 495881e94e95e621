"""The etcd budget's arithmetic: who is admitted at which usage, and how counts are refreshed.

The counter is a fake standing in for the API server's one-item list (the real one is tested
in tests/integration/test_budget.py).
"""

from __future__ import annotations

import pytest

from zenwatcher.finding import Severity
from zenwatcher.pipeline.budget import INSTANCE, NAMESPACE, Budget, admits


class TestAdmits:
    @pytest.mark.parametrize(
        ("severity", "last_admitted_at"),
        [
            (Severity.INFO, 79),
            (Severity.LOW, 84),
            (Severity.MEDIUM, 89),
            (Severity.HIGH, 94),
            (Severity.CRITICAL, 99),
        ],
    )
    def test_each_severity_has_its_share_of_the_limit(
        self, severity: Severity, last_admitted_at: int
    ) -> None:
        """With a limit of 100, info stops at 80 Observations and critical at 100."""
        assert admits(last_admitted_at, 100, severity)
        assert not admits(last_admitted_at + 1, 100, severity)

    def test_no_limit_admits_everything(self) -> None:
        assert admits(10**9, 0, Severity.INFO)


class Counts:
    def __init__(self, per_namespace: dict[str, int]) -> None:
        self.per_namespace = per_namespace
        self.asked: list[str | None] = []

    async def __call__(self, namespace: str | None) -> int:
        self.asked.append(namespace)
        if namespace is None:
            return sum(self.per_namespace.values())
        return self.per_namespace.get(namespace, 0)


class TestBudget:
    async def test_nothing_is_refused_before_the_first_count(self) -> None:
        budget = Budget(total_limit=1, namespace_limit=1, count=Counts({"a": 50}), scope=())
        assert budget.reserve("a", Severity.INFO) is None

    async def test_the_instance_limit_then_the_namespace_limit(self) -> None:
        counts = Counts({"a": 9, "b": 1})
        budget = Budget(total_limit=20, namespace_limit=10, count=counts, scope=())
        budget.reserve("a", Severity.INFO)  # written since the last count: counted next time
        await budget.refresh()
        assert [None, "a"] == counts.asked
        refusal = budget.reserve("a", Severity.MEDIUM)  # 9 + 1 > 10 * 0.9
        assert refusal is not None
        assert (NAMESPACE, 9, 10) == (refusal.scope, refusal.used, refusal.limit)
        assert budget.reserve("a", Severity.CRITICAL) is None  # 9 + 1 <= 10, and taken
        assert budget.reserve("a", Severity.CRITICAL) is not None  # 10 + 1 > 10
        budget.release("a")  # that create met an existing Observation
        assert budget.reserve("a", Severity.CRITICAL) is None
        budget.total_limit = 12  # a lower limit (a changed setting, after a restart)
        budget.hold("b")  # the instance holds 12 now
        refusal = budget.reserve("b", Severity.CRITICAL)
        assert refusal is not None
        assert (INSTANCE, 12, 12) == (refusal.scope, refusal.used, refusal.limit)

    async def test_a_sharded_scope_is_counted_namespace_by_namespace(self) -> None:
        counts = Counts({"a": 3, "b": 4, "elsewhere": 1000})
        budget = Budget(total_limit=10, namespace_limit=0, count=counts, scope=("a", "b"))
        await budget.refresh()
        assert ["a", "b"] == counts.asked
        assert 7 == budget.total_used
        assert budget.has_room(Severity.INFO)  # 8 <= 8
        budget.hold("a")
        assert not budget.has_room(Severity.INFO)
        assert budget.has_room(Severity.CRITICAL)

    async def test_a_selector_scope_is_read_at_each_count(self) -> None:
        """With WATCH_NAMESPACE_SELECTOR the scope is asked anew at every count: a namespace
        that left no longer counts, not even for the fullest-namespace ratio."""
        counts = Counts({"a": 3, "b": 8})
        scope: tuple[str, ...] = ("a", "b")
        budget = Budget(total_limit=100, namespace_limit=10, count=counts, scope=lambda: scope)
        await budget.refresh()
        assert (11, 0.8) == (budget.total_used, budget.fullest_namespace_ratio())
        scope = ("a",)
        await budget.refresh()
        assert (3, 0.3) == (budget.total_used, budget.fullest_namespace_ratio())

    async def test_ratios_for_the_metrics(self) -> None:
        budget = Budget(total_limit=100, namespace_limit=10, count=Counts({"a": 5}), scope=())
        budget.reserve("a", Severity.LOW)
        await budget.refresh()
        assert (0.05, 0.5) == (budget.total_ratio(), budget.fullest_namespace_ratio())

    async def test_room_is_what_each_severity_may_still_take(self) -> None:
        budget = Budget(total_limit=100, namespace_limit=10, count=Counts({"a": 6}), scope=())
        budget.reserve("a", Severity.LOW)
        await budget.refresh()
        assert 94 == budget.room(Severity.CRITICAL)  # the instance: 100 - 6
        assert 4 == budget.room(Severity.CRITICAL, "a")  # the namespace: 10 - 6
        assert 2 == budget.room(Severity.INFO, "a")  # 80 % of 10, less 6
        assert budget.has_room(Severity.INFO, "a")
        budget.hold("a")
        budget.hold("a")
        assert not budget.has_room(Severity.INFO, "a")
        assert budget.has_room(Severity.CRITICAL, "a")
