"""Each audited request judged once by auditID, at the first of its stages that arrives.

The exec fixture is a real audit event; its other stages are the same event with another stage,
as the API server writes them. The clock is a fake (a day passes without waiting for it).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.harness.paths import SHARED_FIXTURES
from zenwatcher.finding import Finding
from zenwatcher.mapping import audit
from zenwatcher.mapping.audit.once import AuditJudgedOnce
from zenwatcher.mapping.rejection import Ignored, Skip


def exec_event(stage: str, audit_id: str | None = None) -> dict[str, Any]:
    text = (SHARED_FIXTURES / "audit" / "exec_pod.json").read_text()
    event: dict[str, Any] = copy.deepcopy(json.loads(text))
    event["stage"] = stage
    if audit_id is not None:
        event["auditID"] = audit_id
    return event


def outcome(judge: AuditJudgedOnce, event: dict[str, Any]) -> str:
    try:
        return judge(event).event_type
    except Ignored as ignored:
        return f"Ignored:{ignored.reason}"


def test_exec_judged_when_it_starts_and_not_again() -> None:
    judge = AuditJudgedOnce()
    stages = ["ResponseStarted", "ResponseComplete"]
    assert ["pod_exec", "Ignored:stage"] == [outcome(judge, exec_event(s)) for s in stages]


@pytest.mark.parametrize("stage", ["ResponseComplete", "Panic"])
def test_exec_judged_at_its_end_when_the_policy_omits_response_started(stage: str) -> None:
    """omitStages: [RequestReceived, ResponseStarted]: the exec is still a finding."""
    judge = AuditJudgedOnce()
    assert "pod_exec" == outcome(judge, exec_event(stage))
    assert (
        audit.map_audit_event(exec_event("ResponseStarted")).name
        == judge(exec_event(stage, audit_id="another-request")).name
    )  # the same finding as the default judgement: one Observation


def test_other_requests_are_remembered_by_their_own_auditid() -> None:
    judge = AuditJudgedOnce()
    assert "pod_exec" == outcome(judge, exec_event("ResponseStarted", audit_id="a"))
    assert "pod_exec" == outcome(judge, exec_event("ResponseStarted", audit_id="b"))
    assert "Ignored:stage" == outcome(judge, exec_event("ResponseComplete", audit_id="a"))


def test_normal_requests_need_no_memory() -> None:
    judge = AuditJudgedOnce()
    text = (SHARED_FIXTURES / "audit" / "create_kube_system_secret.json").read_text()
    secret = json.loads(text)
    assert "secret_write" == judge(secret).event_type
    assert "secret_write" == judge(secret).event_type  # a repeat, counted by dedup as such
    assert 0 == len(judge)


def test_memory_is_bounded_in_time_and_size() -> None:
    now = [0.0]
    judge = AuditJudgedOnce(ttl_seconds=100.0, max_size=2, clock=lambda: now[0])
    for audit_id in ("a", "b", "c"):  # "a" is forgotten to make room for "c"
        judge(exec_event("ResponseStarted", audit_id=audit_id))
    assert 2 == len(judge)
    assert "pod_exec" == outcome(judge, exec_event("ResponseComplete", audit_id="a"))
    now[0] = 150.0  # "b" and "c" expire
    assert "pod_exec" == outcome(judge, exec_event("ResponseComplete", audit_id="b"))
    assert 1 == len(judge)


def test_judge_returns_the_later_stage_as_a_skip() -> None:
    """The intake's form: an exec's second judged stage is a Skip("stage"), not raised."""
    judge = AuditJudgedOnce()
    first = judge.judge(exec_event("ResponseStarted"))
    later = judge.judge(exec_event("ResponseComplete"))
    assert isinstance(first, Finding)
    assert isinstance(later, Skip)
    assert "stage" == later.reason
    assert "judged at an earlier stage" in later.describe()
