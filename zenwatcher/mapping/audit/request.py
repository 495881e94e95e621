"""The `Request` one audit Event stands for, read once and type-checked.

Most audited requests are routine and well-formed, so `read_request` first tries a straight read
that accepts only the exact types the API server writes (strings, lists of strings, objects, an
integer code) and gives up on anything else, a null included. Only then does the validating read
run: it rejects a wrong type with the field's name, or turns nulls into empty values and reads
again. Either way one function, `_typed_request`, decides what the Request holds.

`triage_request`, what the webhook intake uses, is the same read that, once every field is
checked, answers ROUTINE for a request no rule can match (`rules.no_rule_can_match`: most of
them) instead of building a Request nothing would look at.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from zenwatcher.mapping import rejection
from zenwatcher.mapping.audit import fields, rules

AUDIT_GROUP = "audit.k8s.io"
_AUDIT_PREFIX = f"{AUDIT_GROUP}/"
_EMPTY: Mapping[str, Any] = {}
_NO_LIST: list[str] = []  # what an absent list reads as (never mutated)
_OBJECT_REF_STRINGS = ("resource", "namespace", "name", "subresource", "apiGroup", "apiVersion")


class Routine(enum.Enum):
    """What `triage_request` answers for a well-formed request no audit rule can match."""

    REQUEST = "routine"


ROUTINE = Routine.REQUEST


def read_request(event: Mapping[str, Any]) -> rules.Request:
    """The event's Request; `Rejected` naming the first field of a wrong type or missing."""
    request = _typed_request(event) or _validated_read(event, triage=False)
    if request is ROUTINE:  # not answered without triage
        raise AssertionError("an audit event was triaged unasked")
    return request


def triage_request(event: Mapping[str, Any]) -> rules.Request | Routine:
    """`read_request`, every field checked the same, but for a request no rule can match
    (`rules.no_rule_can_match`) ROUTINE instead of a Request nobody would look at."""
    # Both answers of the straight read are truthy: only None goes on to the validating read.
    return _typed_request(event, triage=True) or _validated_read(event, triage=True)


def _validated_read(event: Mapping[str, Any], *, triage: bool) -> rules.Request | Routine:
    request = _typed_request(_normalised(event), triage=triage)
    if request is None:  # _normalised returns only what _typed_request accepts
        raise AssertionError("a normalised audit event was not read")
    return request


def is_audit_api(value: object) -> bool:
    """An apiVersion of the audit group, or none at all (old webhook backends send none)."""
    return value is None or (isinstance(value, str) and value.startswith(_AUDIT_PREFIX))


def _typed_request(
    event: Mapping[str, Any], *, triage: bool = False
) -> rules.Request | Routine | None:
    """The Request of an event whose fields all have their exact types; None for any other.
    With `triage`, ROUTINE for one no rule can match."""
    get = event.get
    verb, stage, audit_id = get("verb", ""), get("stage", ""), get("auditID", "")
    user, ref, status = get("user", _EMPTY), get("objectRef", _EMPTY), get("responseStatus", _EMPTY)
    uri, api_version = get("requestURI", ""), get("apiVersion", _AUDIT_PREFIX)
    if (
        get("kind") != "Event"
        or type(verb) is not str
        or not verb
        or type(stage) is not str
        or not stage
        or type(audit_id) is not str
        or not audit_id
        or type(api_version) is not str
        or not api_version.startswith(_AUDIT_PREFIX)
        or type(uri) is not str
        or type(get("userAgent", "")) is not str
        or type(get("impersonatedUser", _EMPTY)) is not dict
        or type(user) is not dict
        or type(ref) is not dict
        or type(status) is not dict
    ):
        return None
    username, groups = user.get("username", ""), user.get("groups", _NO_LIST)
    resource, namespace = ref.get("resource", ""), ref.get("namespace", "")
    name, subresource = ref.get("name", ""), ref.get("subresource", "")
    code = status.get("code")
    if (
        type(username) is not str
        or type(resource) is not str
        or type(namespace) is not str
        or type(name) is not str
        or type(subresource) is not str
        or type(ref.get("apiVersion", "")) is not str
        or type(ref.get("apiGroup", "")) is not str
        or (code is not None and type(code) is not int)
        or not _strings(groups)
        or not _strings(get("sourceIPs", _NO_LIST))
    ):
        return None
    if triage and rules.no_rule_can_match(resource, verb, username, groups, code):
        return ROUTINE
    api_group = ""
    if resource:
        if "apiGroup" in ref:
            api_group = ref["apiGroup"]
        else:
            # Old events leave apiGroup out; /apis/<group>/<version>/… still names it.
            parts = uri.split("/")
            api_group = parts[2] if len(parts) > 3 and parts[1] == "apis" else ""
    if resource == "namespaces":
        # A Namespace is cluster-scoped; the API server reports it as its own namespace.
        name, namespace = name or namespace, ""
    if not name and verb == "create":
        name = fields.metadata(get("requestObject"), "name") or fields.metadata(
            get("responseObject"), "name"
        )
    # By position, in the fields' order (see rules.Request): this runs for every audited request.
    return rules.Request(
        verb,
        username,
        tuple(groups),
        api_group,
        resource,
        subresource,
        namespace,
        name,
        uri.partition("?")[0],  # path
        code,
        get("requestObject"),
        get("responseObject"),
    )


def _strings(value: object) -> bool:
    if type(value) is not list:
        return False
    # A plain loop: a generator under all() costs more for lists of one or two items.
    for item in value:  # noqa: SIM110
        if type(item) is not str:
            return False
    return True


def _normalised(event: Mapping[str, Any]) -> dict[str, Any]:
    """The fields `_typed_request` reads, type-checked (Rejected names a bad one), nulls emptied
    and values of subclassed types (never from JSON, possible from a caller) made exact."""
    kind = event.get("kind")
    if kind != "Event":
        raise rejection.Rejected("invalid_kind", f"expected an audit Event, got kind {kind!r}")
    api_version = event.get("apiVersion")
    if not is_audit_api(api_version):
        raise rejection.Rejected(
            "invalid_api_version", f"expected apiVersion {AUDIT_GROUP}/*, got {api_version!r}"
        )
    normalised: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": str(api_version or _AUDIT_PREFIX),
        **{key: str(fields.required_str(event, key)) for key in ("auditID", "stage", "verb")},
        # Fields only the details use are checked too, so a bad event is rejected at any stage.
        "userAgent": str(fields.optional_str(event, "userAgent")),
        "sourceIPs": [str(item) for item in fields.strings(event, "sourceIPs")],
        "impersonatedUser": dict(fields.optional_map(event, "impersonatedUser")),
    }
    user = fields.optional_map(event, "user")
    ref = fields.optional_map(event, "objectRef")
    typed_ref = {
        key: str(fields.optional_str(ref, key, where="objectRef"))
        for key in _OBJECT_REF_STRINGS
        if key in ref
    }
    code = fields.response_code(event)
    normalised |= {
        "user": {
            "username": str(fields.optional_str(user, "username", where="user")),
            "groups": [str(item) for item in fields.strings(user, "groups", where="user")],
        },
        "objectRef": typed_ref,
        "requestURI": str(fields.optional_str(event, "requestURI")),
        "responseStatus": {"code": None if code is None else int(code)},
        "requestObject": event.get("requestObject"),
        "responseObject": event.get("responseObject"),
    }
    return normalised
