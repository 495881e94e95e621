"""Discovery against an injected fault: an API server whose discovery fails for a while.

A fake client, because the fault (discovery answering 503 at the very start of a term, then
recovering) cannot be timed on a real server; discovery against the real one is tested in
tests/integration/test_informer.py.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, cast

from zenwatcher.kube import discovery, errors
from zenwatcher.kube.client import KubeClient
from zenwatcher.mapping.reports.kinds import REPORT_KINDS, ReportKind
from zenwatcher.pacing import Backoff

POLICY_REPORT = REPORT_KINDS[0]


class FailingFirst:
    """Discovery answers `failures` errors first (503, then a lost connection), then serves."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            if self.calls % 2:
                raise errors.error_for(503, {"message": "unavailable"})
            raise errors.TransportError("connection reset")
        if path == discovery.group_version_path(POLICY_REPORT.group, POLICY_REPORT.version):
            return {"resources": [{"name": POLICY_REPORT.plural}]}
        raise errors.error_for(404, {"message": "not found"})


def finder(
    fake: FailingFirst | Refusing, announced: list[ReportKind], *, within: float = 5.0
) -> discovery.Discovery[ReportKind]:
    async def on_available(kind: ReportKind) -> None:
        announced.append(kind)

    return discovery.Discovery(
        client=cast("KubeClient", fake),
        wanted=[POLICY_REPORT],
        on_available=on_available,
        backoff_factory=functools.partial(Backoff, base=0.01, cap=0.02),
        definite_within=within,
    )


class Refusing:
    """Discovery answers `status` every time."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.calls = 0

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls += 1
        raise errors.error_for(self.status, {"message": "no"})


async def test_definite_check_waits_out_failures() -> None:
    """The start of a term: three failed calls, then the answer; the kind is announced."""
    fake, announced = FailingFirst(failures=3), list[ReportKind]()
    assert frozenset() == await finder(fake, announced).check(definite=True)
    assert [POLICY_REPORT] == announced
    assert 4 == fake.calls


async def test_routine_check_leaves_failures_to_the_next_pass() -> None:
    """Mid-term passes: a failed call announces nothing now, and the next pass does."""
    fake, announced = FailingFirst(failures=1), list[ReportKind]()
    found = finder(fake, announced)
    await found.check()
    assert [] == announced
    await found.check()
    assert [POLICY_REPORT] == announced


async def test_definite_check_gives_up_on_a_group_that_never_answers() -> None:
    """An aggregated report API whose backend stays down: after the time limit the check
    returns and names it (the term then resolves no orphans), instead of waiting forever."""
    fake, announced = Refusing(503), list[ReportKind]()
    failed = await asyncio.wait_for(
        finder(fake, announced, within=0.3).check(definite=True), timeout=5
    )
    assert frozenset({POLICY_REPORT.api_version}) == failed
    assert [] == announced
    assert fake.calls > 3


async def test_a_refusal_is_not_retried() -> None:
    """403 will not change by waiting: one call, the group-version named as failed."""
    fake = Refusing(403)
    failed = await finder(fake, list[ReportKind]()).check(definite=True)
    assert frozenset({POLICY_REPORT.api_version}) == failed
    assert 1 == fake.calls
