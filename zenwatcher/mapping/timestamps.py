"""Lenient parsing of tools' own timestamps: a bad one never rejects a finding
(docs/design.md §4)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# Falco writes nanoseconds ("2021-05-04T13:57:22.512929126Z"): Python 3.11's fromisoformat keeps
# six digits; a parser that refuses them gets the text with the rest cut off.
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: object) -> datetime | None:
    """An aware UTC datetime from RFC 3339 text or epoch seconds/nanoseconds; None if unusable."""
    if isinstance(value, str):  # the common case, once per webhook event
        return _from_text(value.strip())
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):  # YAML decodes unquoted timestamps itself
        return _usable(value)
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    return None


def _from_text(text: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        # Older parsers refuse more than six fraction digits; retry without the rest.
        try:
            moment = datetime.fromisoformat(_LONG_FRACTION.sub(_keep_micros, text))
        except ValueError:
            return None
    return _usable(moment)


def _usable(moment: datetime) -> datetime | None:
    """`moment` in UTC (naive means UTC); None before 1970, which no tool reports from, and for
    a moment that cannot be expressed in UTC ("0001-01-01T00:00:00+01:00")."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.tzinfo is not UTC:
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:
            return None
    return moment if moment >= _EARLIEST else None


def _keep_micros(match: re.Match[str]) -> str:
    return match.group(1)


def _from_epoch(number: float) -> datetime | None:
    # Values past year ~5000 in seconds are nanoseconds (Falco's `output_fields.evt.time`).
    seconds = number / 1e9 if number > 1e11 else number
    try:
        return _usable(datetime.fromtimestamp(seconds, tz=UTC))
    except (OverflowError, OSError, ValueError):
        return None
