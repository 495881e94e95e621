"""The filter configuration in force, shared by every intake and the report controller."""

from __future__ import annotations

from dataclasses import dataclass, field

from zenwatcher.filters import rules


@dataclass(slots=True)
class FilterState:
    """The filter configuration in force; replaced whole by a reload, never mutated."""

    config: rules.FilterConfig = field(default_factory=rules.FilterConfig.empty)
