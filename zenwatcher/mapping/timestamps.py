"""Lenient parsing of tools' own timestamps: a bad one never rejects a finding (DESIGN.md §4)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# Falco writes nanoseconds ("2021-05-04T13:57:22.512929126Z"): Python 3.11's fromisoformat keeps
# six digits; a parser that refuses them gets the text with the rest cut off.
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: object) -> datetime | None:
    """An aware UTC datetime from RFC 3339 text or epoch seconds/nanoseconds; None if unusable."""
    if isinstance(value, str):  # the common case, once per webhook event
        return _from_text(value.strip())
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):  # YAML decodes unquoted timestamps itself
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
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
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def _keep_micros(match: re.Match[str]) -> str:
    return match.group(1)


def _from_epoch(number: float) -> datetime | None:
    # Values past year ~5000 in seconds are nanoseconds (Falco's `output_fields.evt.time`).
    seconds = number / 1e9 if number > 1e11 else number
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
