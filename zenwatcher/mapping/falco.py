"""Falco alerts (`http_output` JSON, or falcosidekick's forwarded copy) mapped to findings.

One alert object is one `runtime_detection` finding (docs/design.md §4); Falco's own internal
events are Ignored. The identity (docs/design.md §3) is the rule, where it fired and the fields
that stay the same for the same actor; never times, pids, ports, uuids or the output text,
which embeds a time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from zenwatcher.finding import Category, DeferredDetails, Finding, ResourceRef, Severity
from zenwatcher.mapping import rejection, resource_kinds, severity, timestamps

SOURCE = "falco"
EVENT_TYPE = "runtime_detection"
INTERNAL_SOURCE = "internal"
INTERNAL_RULE_PREFIX = "Falco internal:"

# Falco prints "<NA>" for a field it could not resolve (a host process has no k8s.ns.name).
_ABSENT = frozenset({"", "<NA>", "N/A"})

# Plugin sources (k8s_audit, aws_cloudtrail, okta, …) report from a collector: their hostname
# is where Falco ran, not where the event happened, so only syscall alerts identify by host.
_HOST_SOURCES = frozenset({"", "syscall"})

# "172.17.0.9:43812->10.96.0.1:443": the client port is ephemeral, so socket ports are dropped
# (IPv4 and bracketed IPv6 only; bare IPv6 is ambiguous and kept as is).
_SOCKET_PORT = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d+")


def split_falco_body(payload: Any) -> list[Any]:
    """The candidate alerts of one decoded request body: one object, or a JSON array of them."""
    if isinstance(payload, dict):
        return [payload]
    if isinstance(payload, list):
        return list(payload)
    raise rejection.Rejected(
        "invalid_shape",
        f"a Falco body must be an alert object or an array of them, got {type(payload).__name__}",
    )


def map_falco_alert(alert: Any) -> Finding:
    """The finding one Falco alert stands for.

    Raises `Rejected` for a non-object, a missing rule or a wrongly typed field, and
    `Ignored("internal")` for Falco's own events (metrics snapshots, drop notices).
    """
    falco_source, rule, raw_fields = _checked(alert)
    fields = {str(key): item for key, item in raw_fields.items() if item is not None}
    tags = [tag for tag in alert.get("tags") or () if isinstance(tag, str)]
    priority = alert.get("priority")
    return Finding(
        source=SOURCE,
        category=Category.SECURITY,
        # A detection whose priority is missing or unknown still deserves attention.
        severity=severity.map_severity(priority, default=Severity.MEDIUM),
        event_type=EVENT_TYPE,
        identity=_identity(alert, rule=rule, fields=fields, falco_source=falco_source),
        resource=_resource(fields),
        title=rule,
        message=_text(alert.get("output")) or rule,
        details=DeferredDetails(
            lambda: _details(alert, rule=rule, fields=fields, tags=tags, falco_source=falco_source)
        ),
        detected_at=timestamps.parse_time(alert.get("time")),
    )


def falco_repeat_key(alert: Any) -> tuple[str, ...] | None:
    """The identity `map_falco_alert` gives this alert, read without building its finding, or
    None when the mapping would refuse it (rejected or ignored): the caller then maps it, and
    it is counted there with its reason. Both read the alert through `_checked`."""
    try:
        falco_source, rule, fields = _checked(alert)
    except (rejection.Rejected, rejection.Ignored):
        return None
    # Output fields that are null read as "" in the identity, as if absent.
    return _identity(alert, rule=rule, fields=fields, falco_source=falco_source)


def _checked(alert: Any) -> tuple[str, str, dict[str, Any]]:
    """Falco's source, the rule and the output fields as sent, once every field the mapping
    reads has its type (tags included: a bad field rejects the alert, not its later write).

    Raises `Rejected` or `Ignored`, with the reason the alert is counted under.
    """
    if type(alert) is not dict:
        raise rejection.Rejected(
            "not_an_object", f"a Falco alert must be a JSON object, got {type(alert).__name__}"
        )
    falco_source = _optional_str(alert, "source")
    rule = _rule(alert, falco_source=falco_source)
    fields = alert.get("output_fields")
    if fields is not None and type(fields) is not dict:
        raise rejection.Rejected(
            "invalid_field",
            f"Falco alert field output_fields must be an object, got {type(fields).__name__}",
        )
    tags = alert.get("tags")
    if tags is not None and type(tags) is not list:
        raise rejection.Rejected(
            "invalid_field", f"Falco alert field tags must be an array, got {type(tags).__name__}"
        )
    return falco_source, rule, fields or {}


def _rule(alert: Mapping[str, Any], *, falco_source: str) -> str:
    raw = alert.get("rule")
    if falco_source == INTERNAL_SOURCE or (
        isinstance(raw, str) and raw.startswith(INTERNAL_RULE_PREFIX)
    ):
        raise rejection.Ignored("internal", f"Falco internal event: {raw!r}")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise rejection.Rejected("missing_rule", "a Falco alert must name its rule")
    if not isinstance(raw, str):
        raise rejection.Rejected(
            "invalid_field", f"Falco alert field rule must be a string, got {type(raw).__name__}"
        )
    return raw.strip()


def _optional_str(alert: Mapping[str, Any], key: str) -> str:
    value = alert.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise rejection.Rejected(
            "invalid_field", f"Falco alert field {key} must be a string, got {type(value).__name__}"
        )
    return value.strip()


def _text(value: object) -> str:
    """A field as identity text: scalars as written, Falco's "<NA>" and anything else as ""."""
    # Called ~20 times per alert on the webhook hot path: the common cases go first.
    if value is None:
        return ""
    if type(value) is str:
        stripped = value.strip()
        return "" if stripped in _ABSENT else stripped
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return ""


def _hostname(alert: Mapping[str, Any], fields: Mapping[str, Any]) -> str:
    return _text(alert.get("hostname")) or _text(fields.get("evt.hostname"))


def _identity(
    alert: Mapping[str, Any], *, rule: str, fields: Mapping[str, Any], falco_source: str
) -> tuple[str, ...]:
    # Written out field by field: this runs for every alert, repeats included.
    get = fields.get
    namespace = _text(get("k8s.ns.name")) or _text(get("ka.target.namespace"))
    pod = _text(get("k8s.pod.name"))
    # The host only tells actors apart when there is no pod, and only for syscall alerts.
    host = _hostname(alert, fields) if not pod and falco_source in _HOST_SOURCES else ""
    return (
        rule,
        namespace,
        pod,
        host,
        # The actor: fields that stay the same for it; not proc.cmdline, whose arguments vary.
        _text(get("container.id")),
        _text(get("container.image.repository")),
        _text(get("proc.name")),
        # Older Falco has no proc.exepath; proc.exe is the path it was started by.
        _text(get("proc.exepath")) or _text(get("proc.exe")),
        _text(get("proc.pname")),
        _text(get("user.name")),
        _without_ports(_text(get("fd.name"))),
        # What a k8s_audit-sourced alert was about.
        _text(get("ka.user.name")),
        _text(get("ka.verb")),
        _text(get("ka.target.resource")),
        _text(get("ka.target.subresource")),
        _text(get("ka.target.name")),
    )


def _without_ports(fd_name: str) -> str:
    return _SOCKET_PORT.sub(_address_only, fd_name) if ":" in fd_name else fd_name


def _address_only(match: re.Match[str]) -> str:
    return match.group(1)


def _resource(fields: Mapping[str, Any]) -> ResourceRef | None:
    namespace = _text(fields.get("k8s.ns.name"))
    pod = _text(fields.get("k8s.pod.name"))
    if pod:
        return ResourceRef(api_version="v1", kind="Pod", name=pod, namespace=namespace)
    if namespace:
        return ResourceRef(namespace=namespace)
    return _audit_resource(fields)


def _audit_resource(fields: Mapping[str, Any]) -> ResourceRef | None:
    """The object a k8s_audit-sourced alert is about, from its `ka.target.*` fields."""
    plural = _text(fields.get("ka.target.resource"))
    namespace = _text(fields.get("ka.target.namespace"))
    name = _text(fields.get("ka.target.name"))
    if plural == "namespaces":
        # A Namespace is cluster-scoped; the API server reports it as its own namespace.
        name, namespace = name or namespace, ""
    if not name and not namespace:
        return None
    return ResourceRef(
        api_version=resource_kinds.api_version_for(plural) if name else "",
        kind=resource_kinds.kind_for(plural) if name else "",
        name=name,
        namespace=namespace,
    )


def _details(
    alert: Mapping[str, Any],
    *,
    rule: str,
    fields: Mapping[str, Any],
    tags: list[str],
    falco_source: str,
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "rule": rule,
        "priority": _text(alert.get("priority")),
        "tags": tags,
        "hostname": _hostname(alert, fields),
        "falcoSource": falco_source,
        "time": _text(alert.get("time")),
        "outputFields": dict(fields),
    }
    uuid = _text(alert.get("uuid"))  # falcosidekick's per-event id: a detail, never identity
    if uuid:
        details["uuid"] = uuid
    return details
