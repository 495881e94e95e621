"""falco_repeat_key: the identity map_falco_alert gives, exactly for the alerts it maps.

The intake counts a repeat by this key without mapping the alert, so it must never disagree with
the mapping: the same identity for every alert that maps to a finding, None for every other
(rejected, ignored), so those are still judged, with their reasons, by the mapping.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.harness import payloads
from zenwatcher.mapping import falco
from zenwatcher.mapping.rejection import Ignored, Rejected


def mapped_identity(alert: Any) -> tuple[str, ...] | None:
    try:
        return falco.map_falco_alert(alert).identity
    except (Rejected, Ignored):
        return None


def test_every_fixture_alert_gets_its_mapped_identity() -> None:
    alerts = [alert for _, alert in payloads.falco_alerts()]
    assert alerts
    for alert in alerts:
        assert mapped_identity(alert) == falco.falco_repeat_key(alert)


def test_alerts_the_mapping_refuses_get_no_key() -> None:
    base = payloads.falco_alerts()[0][1]
    refused: list[Any] = [
        "text",
        [base],
        {**base, "rule": None},
        {**base, "rule": "  "},
        {**base, "rule": 7},
        {**base, "source": "internal"},
        {**base, "rule": "Falco internal: metrics snapshot"},
        {**base, "source": 3},
        {**base, "output_fields": "k8s.pod.name=x"},
        {**base, "tags": "a,b"},
    ]
    for alert in refused:
        assert mapped_identity(alert) is None, alert
        assert falco.falco_repeat_key(alert) is None, alert


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["", "<NA>", " bash ", "Falco internal: x", "internal", "syscall"]),
)
_FIELD_NAMES = st.sampled_from(
    [
        "k8s.ns.name",
        "k8s.pod.name",
        "container.id",
        "proc.name",
        "proc.exepath",
        "proc.exe",
        "fd.name",
        "evt.hostname",
        "ka.target.namespace",
        "ka.target.resource",
        "ka.target.name",
        "ka.verb",
    ]
)


@st.composite
def alerts(draw: st.DrawFn) -> dict[str, Any]:
    alert: dict[str, Any] = {}
    for key in ("rule", "source", "priority", "output", "time", "hostname"):
        if draw(st.booleans()):
            alert[key] = draw(_SCALARS)
    if draw(st.booleans()):
        alert["output_fields"] = draw(
            st.one_of(st.dictionaries(_FIELD_NAMES, _SCALARS, max_size=6), _SCALARS)
        )
    if draw(st.booleans()):
        alert["tags"] = draw(st.one_of(st.lists(_SCALARS, max_size=3), _SCALARS))
    return alert


@settings(max_examples=400, deadline=None)
@given(alerts())
def test_any_alert_gets_the_mapped_identity_or_none_when_not_mapped(alert: dict[str, Any]) -> None:
    before = copy.deepcopy(alert)
    key = falco.falco_repeat_key(alert)
    assert alert == before  # read only
    assert mapped_identity(alert) == key
