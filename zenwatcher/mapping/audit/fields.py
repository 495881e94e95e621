"""Type-checked reads of audit Event fields: a wrong type is a `Rejected("invalid_field")`.

The audit mapper reads raw JSON; these helpers turn "absent" into an empty value and anything of
the wrong type into a rejection naming the field, so the mapper itself stays free of isinstance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zenwatcher.mapping import rejection


def required_str(event: Mapping[str, Any], key: str) -> str:
    """A non-empty string field; `missing_field` when absent or empty."""
    value = event.get(key)
    if value is None or value == "":
        raise rejection.Rejected("missing_field", f"audit event has no {key}")
    if not isinstance(value, str):
        raise invalid(key, "a string", value)
    return value


def optional_str(mapping: Mapping[str, Any], key: str, *, where: str = "") -> str:
    """A string field, "" when absent."""
    value = mapping.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(_path(where, key), "a string", value)
    return value


def optional_map(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """An object field, empty when absent."""
    value = mapping.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(key, "an object", value)
    return value


def strings(mapping: Mapping[str, Any], key: str, *, where: str = "") -> tuple[str, ...]:
    """An array-of-strings field, empty when absent."""
    value = mapping.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(_path(where, key), "an array of strings", value)
    return tuple(value)


def response_code(event: Mapping[str, Any]) -> int | None:
    """`responseStatus.code`; None when there is none yet (as at RequestReceived)."""
    code = optional_map(event, "responseStatus").get("code")
    if code is None:
        return None
    if isinstance(code, bool) or not isinstance(code, int):
        raise invalid("responseStatus.code", "an integer", code)
    return code


def metadata(obj: object, key: str) -> str:
    """`metadata.<key>` of an embedded object of any shape, "" when it has none."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    value = meta.get(key) if isinstance(meta, dict) else None
    return value if isinstance(value, str) else ""


def invalid(field: str, wanted: str, value: object) -> rejection.Rejected:
    """The rejection for a field of the wrong type."""
    return rejection.Rejected(
        "invalid_field", f"audit event field {field} must be {wanted}, got {type(value).__name__}"
    )


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
