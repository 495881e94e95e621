"""The one error a mapper raises: a payload it cannot turn into a finding, with a reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# The rejected reason of an entry our own code failed on (a bug, logged with its traceback):
# the entry is counted and skipped like a malformed one, and the rest goes on.
INTERNAL_ERROR = "internal_error"


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

    The message may be given as a function: most audited requests are ignored and only their
    reason is counted, so their message is written only when something reads it.
    """

    def __init__(self, reason: str, message: str | Callable[[], str]) -> None:
        super().__init__(*(() if callable(message) else (message,)))
        self.reason = reason
        self._message = message

    def __str__(self) -> str:
        if callable(self._message):
            self._message = self._message()
        return self._message

    def as_skip(self) -> Skip:
        """The same verdict as a value, for callers that count returned verdicts."""
        return Skip(self.reason, self.__str__)


@dataclass(slots=True)
class Skip:
    """What `Ignored` says, returned instead of raised where it is the common outcome: most
    audited requests match no rule, and raising and catching an exception for each costs more
    than reading the event. Counted as filtered{reason} exactly like Ignored; `describe()`
    writes the message only when something reads it."""

    reason: str
    describe: Callable[[], str]

    def as_ignored(self) -> Ignored:
        """The same verdict as the exception, for callers that raise."""
        return Ignored(self.reason, self.describe)
