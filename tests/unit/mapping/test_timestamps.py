"""Tools' own timestamps: usable ones in UTC, anything else None, never an exception (§4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from zenwatcher.mapping import timestamps
from zenwatcher.observation import rfc3339


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-05-04T13:57:22.512929126Z", datetime(2021, 5, 4, 13, 57, 22, 512929, tzinfo=UTC)),
        ("2021-05-04T15:57:22+02:00", datetime(2021, 5, 4, 13, 57, 22, tzinfo=UTC)),
        ("2021-05-04T13:57:22", datetime(2021, 5, 4, 13, 57, 22, tzinfo=UTC)),  # naive is UTC
        (1620136642, datetime(2021, 5, 4, 13, 57, 22, tzinfo=UTC)),
        (1620136642512929126, datetime(2021, 5, 4, 13, 57, 22, 512929, tzinfo=UTC)),
        (
            datetime(2021, 5, 4, 15, 57, 22, tzinfo=timezone(timedelta(hours=2))),
            datetime(2021, 5, 4, 13, 57, 22, tzinfo=UTC),
        ),
    ],
)
def test_usable_times_in_utc(value: object, expected: datetime) -> None:
    parsed = timestamps.parse_time(value)
    assert expected == parsed
    assert parsed is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        # Parse, but cannot be expressed in UTC: astimezone overflows.
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        # Before 1970: no tool reports from then, and strftime wrote year 5 as "5-06-01…".
        "0005-06-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        -86400,
        "not a time",
        "",
        True,
        None,
        [],
    ],
)
def test_unusable_times_are_none(value: object) -> None:
    assert timestamps.parse_time(value) is None


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00Z"),
        (datetime(2026, 11, 27, 9, 5, 7, 999999, tzinfo=UTC), "2026-11-27T09:05:07Z"),
        (
            datetime(2026, 11, 27, 11, 5, 7, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-27T09:05:07Z",
        ),
        (datetime(5, 6, 1, tzinfo=UTC), "0005-06-01T00:00:00Z"),  # four-digit year, always
    ],
)
def test_rfc3339_as_kubernetes_writes_it(moment: datetime, text: str) -> None:
    assert text == rfc3339(moment)
