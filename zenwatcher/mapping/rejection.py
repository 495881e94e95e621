"""The one error a mapper raises: a payload it cannot turn into a finding, with a reason."""

from __future__ import annotations


class Rejected(ValueError):
    """A payload (or one entry of it) that is not a valid finding.

    `reason` is a short snake_case metric label value; the message says what was wrong.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Ignored(ValueError):
    """A well-formed payload that is not a finding (Falco internal events, audit requests no rule
    matches, audit stages that are not judged). Counted as filtered{reason}, answered 2xx.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
