"""Severity words from tools mapped case-insensitively to Observation severities
(docs/design.md §4)."""

from __future__ import annotations

from zenwatcher.finding import Severity

_WORDS: dict[str, Severity] = {
    "critical": Severity.CRITICAL,
    "emergency": Severity.CRITICAL,
    "alert": Severity.CRITICAL,
    "fatal": Severity.CRITICAL,
    "high": Severity.HIGH,
    "error": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "warning": Severity.MEDIUM,
    "warn": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "low": Severity.LOW,
    "notice": Severity.LOW,
    "info": Severity.INFO,
    "informational": Severity.INFO,
    "debug": Severity.INFO,
    "unknown": Severity.INFO,
    "none": Severity.INFO,
}


def map_severity(word: object, *, default: Severity) -> Severity:
    """The severity a tool's word means; `default` when the word is missing or unknown."""
    if not isinstance(word, str):
        return default
    return _WORDS.get(word.strip().lower(), default)
