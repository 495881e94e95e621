"""The daemon's answer to "why was this dropped": a debug line per filtered finding, sampled.

With LOG_LEVEL=debug every filter drop may log `filter_dropped` with the finding's name, the
reason label and the value that dropped it (`explain.why`). A flood of dropped events must not
flood the log, so each reason gets at most `per_second` lines in each one-second window (by the
monotonic clock); the next line logged for that reason carries `suppressed`, how many drops of
that reason went unlogged since the previous one. Below debug level a drop costs one boolean test.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from zenwatcher.filters import explain, rules
from zenwatcher.finding import Finding

DEFAULT_LINES_PER_SECOND = 5


@dataclass(slots=True)
class _Window:
    second: int = -1
    logged: int = 0
    suppressed: int = 0


class DropLog:
    """Sampled debug lines for filter drops, shared by every intake and the report controller."""

    def __init__(
        self,
        *,
        per_second: int = DEFAULT_LINES_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
        logger: Any = None,
    ) -> None:
        self._per_second = per_second
        self._clock = clock
        self._logger = logger if logger is not None else structlog.get_logger()
        self._enabled: bool | None = None  # asked once: logging is set up before any event
        self._windows: dict[str, _Window] = {}

    def dropped(self, config: rules.FilterConfig, finding: Finding, reason: str) -> None:
        """Log why `finding` was dropped, unless debug is off or this reason is over its rate."""
        if self._enabled is None:
            self._enabled = bool(self._logger.is_enabled_for(logging.DEBUG))
        if not self._enabled:
            return
        window = self._windows.get(reason)
        if window is None:
            window = self._windows[reason] = _Window()
        second = int(self._clock())
        if second != window.second:
            window.second, window.logged = second, 0
        if window.logged >= self._per_second:
            window.suppressed += 1
            return
        window.logged += 1
        suppressed, window.suppressed = window.suppressed, 0
        self._logger.debug(
            "filter_dropped",
            source=finding.source,
            name=finding.name,
            reason=reason,
            why=explain.why(config, finding, reason),
            suppressed=suppressed,
        )


# One per process: the limit holds for the whole daemon, whichever path drops.
DROP_LOG = DropLog()
