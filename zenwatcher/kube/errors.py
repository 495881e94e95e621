"""API errors as typed exceptions, so callers branch on meaning, not on numbers."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer from the API server that is not 2xx."""

    def __init__(
        self, status: int, body: dict[str, Any] | None, *, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.body = body or {}
        self.reason = str(self.body.get("reason", ""))
        self.message = str(self.body.get("message", ""))
        self.retry_after = retry_after
        super().__init__(f"{status} {self.reason}: {self.message}".strip())

    @property
    def retriable(self) -> bool:
        """429 and 5xx may succeed later; other 4xx will not."""
        return self.status == 429 or self.status >= 500


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409: AlreadyExists on create, or a stale resourceVersion on update."""

    @property
    def already_exists(self) -> bool:
        return self.reason == "AlreadyExists"


class Gone(ApiError):
    """410: the resourceVersion asked for was compacted away; relist."""


class Forbidden(ApiError):
    """403: RBAC says no."""


class TransportError(Exception):
    """The API server could not be reached, or the call timed out."""


_BY_STATUS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 410: Gone, 403: Forbidden}


def error_for(
    status: int, body: dict[str, Any] | None, *, retry_after: float | None = None
) -> ApiError:
    """The most specific ApiError subclass for `status`."""
    return _BY_STATUS.get(status, ApiError)(status, body, retry_after=retry_after)


def is_retriable(error: BaseException) -> bool:
    """True for failures worth retrying with backoff."""
    if isinstance(error, ApiError):
        return error.retriable
    return isinstance(error, TransportError)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds form only, as the API server sends)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, min(seconds, 60.0))


def retry_hint(error: BaseException) -> float | None:
    """The server's Retry-After for this failure, when it sent one."""
    return error.retry_after if isinstance(error, ApiError) else None
