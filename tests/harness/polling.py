"""Waiting for what a daemon or the API server does eventually."""

from __future__ import annotations

import time
from typing import Any


def wait_for(predicate: Any, *, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy; return its value or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)
