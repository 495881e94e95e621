"""Kubernetes API-server audit events mapped to findings (docs/design.md §4).

`split_audit_body` unpacks a webhook body; `map_audit_event` type-checks one Event, judges it only
at the stage its request is judged at, runs the rule table (`rules`) and builds the finding
(`judge_audit_event` is the same, returning what is not a finding instead of raising it).
Its identity is the rule, user, verb and objectRef (docs/design.md §3): never auditID, times,
IPs, agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from zenwatcher.finding import DeferredDetails, Finding, ResourceRef
from zenwatcher.mapping import rejection, resource_kinds, timestamps
from zenwatcher.mapping.audit import fields, rules
from zenwatcher.mapping.audit.request import ROUTINE, is_audit_api, read_request, triage_request

SOURCE = "audit"
STAGE_RESPONSE_STARTED = "ResponseStarted"
# A request that panicked never reaches ResponseComplete; Panic is its last word.
STAGES_COMPLETE = frozenset({"ResponseComplete", "Panic"})
# Where a streaming request (exec, attach, portforward) is judged: when it starts, or at the
# first of its stages that arrives, for a caller that judges each auditID once.
STREAMING_AT_START = frozenset({STAGE_RESPONSE_STARTED})
STREAMING_AT_ANY = STREAMING_AT_START | STAGES_COMPLETE

_TITLES = {
    "pod_exec": "pod exec",
    "pod_attach": "pod attach",
    "pod_portforward": "pod port-forward",
    "privileged_pod": "privileged pod spec",
    "cluster_admin_binding": "cluster-admin binding",
    "rbac_wildcard": "over-broad RBAC role",
    "rbac_change": "RBAC change",
    "secret_write": "secret write",
    "sensitive_configmap": "credentials in a ConfigMap",
    "anonymous_access": "anonymous access",
    "forbidden_request": "forbidden request",
    "nodeport_service": "NodePort service",
    "namespace_change": "namespace change",
}
# Kinds a requestObject may carry that are not the affected object's kind.
_NOT_OBJECT_KINDS = frozenset({"DeleteOptions", "Status", "Scale", "Eviction", "Binding"})


def split_audit_body(payload: Any) -> list[Any]:
    """The audit Events of a decoded webhook body: an EventList's items, one Event, or an array."""
    if isinstance(payload, list):
        return list(payload)
    if not isinstance(payload, dict) or not is_audit_api(payload.get("apiVersion")):
        raise rejection.Rejected("invalid_shape", _shape_message(payload))
    kind = payload.get("kind")
    if kind == "Event":
        return [payload]
    if kind != "EventList":
        raise rejection.Rejected("invalid_shape", _shape_message(payload))
    items = payload.get("items")
    if items is None:  # Go encodes an empty list as null
        return []
    if not isinstance(items, list):
        raise rejection.Rejected("invalid_shape", "an audit EventList's items must be an array")
    # The API server's webhook backend encodes the list's type only: its items carry no kind or
    # apiVersion (a log line's events do). An item without them is an Event of the list's version.
    api_version = payload.get("apiVersion")
    for item in items:
        if type(item) is dict and "kind" not in item:
            item["kind"] = "Event"
            if api_version is not None and "apiVersion" not in item:
                item["apiVersion"] = api_version
    return list(items)


def audit_id(event: Any) -> str:
    """The auditID naming one request across its stages: the caller's key for judging it once."""
    if not isinstance(event, dict):
        raise rejection.Rejected("not_an_object", _shape_message(event))
    return fields.required_str(event, "auditID")


def is_streaming(event: Any) -> bool:
    """Whether the event is an exec, attach or portforward request (judged when it starts)."""
    ref = event.get("objectRef") if isinstance(event, dict) else None
    if not isinstance(ref, dict) or ref.get("apiGroup") or ref.get("resource") != "pods":
        return False
    subresource = ref.get("subresource")
    return isinstance(subresource, str) and subresource in rules.STREAMING_SUBRESOURCES


def map_audit_event(
    event: Any, *, streaming_judged_at: frozenset[str] = STREAMING_AT_START
) -> Finding:
    """The finding one audit Event stands for.

    Each request is judged once: normal ones at ResponseComplete (or Panic), streaming ones at
    ResponseStarted, since a session's ResponseComplete may come hours later. An audit policy that
    omits ResponseStarted leaves only ResponseComplete: a caller that remembers the auditIDs it
    judged (state this pure function does not keep) passes `STREAMING_AT_ANY` and skips the later
    stages itself (`pipeline.audit_once`). Raises `Rejected` for a malformed event,
    `Ignored("stage")` for a stage not judged and `Ignored("no_rule")` when no rule of
    docs/design.md §4 matches.
    """
    judged = judge_audit_event(event, streaming_judged_at=streaming_judged_at)
    if isinstance(judged, rejection.Skip):
        raise judged.as_ignored()
    return judged


def judge_audit_event(
    event: Any, *, streaming_judged_at: frozenset[str] = STREAMING_AT_START
) -> Finding | rejection.Skip:
    """`map_audit_event` for the webhook intake: a stage not judged and a request no rule
    matches (most audited requests) are returned as a `Skip`, not raised. `Rejected` is still
    raised for a malformed event."""
    if not isinstance(event, dict):
        raise rejection.Rejected("not_an_object", _shape_message(event))
    request = triage_request(event)
    stage: str = event["stage"]  # triage_request checked it
    # A stage judged for both kinds of request needs no look at which kind this is (with
    # STREAMING_AT_ANY, as the intake judges, that is every ResponseComplete).
    if stage not in STAGES_COMPLETE or stage not in streaming_judged_at:
        skipped = _check_stage(
            stage, streaming=is_streaming(event), streaming_judged_at=streaming_judged_at
        )
        if skipped is not None:
            return skipped
    # Messages and details are written only when read; partial() rather than a lambda, as a
    # lambda here would turn `event` and `request` into closure cells on every call.
    if request is ROUTINE:
        return rejection.Skip("no_rule", partial(_no_rule_message_of, event))
    verdicts = rules.matches(request)
    if not verdicts:
        return rejection.Skip("no_rule", partial(_no_rule_message, request))
    verdict = rules.most_severe(verdicts)
    return Finding(
        source=SOURCE,
        category=verdict.category,
        severity=verdict.severity,
        event_type=verdict.event_type,
        identity=_identity(event, request, verdict),
        resource=_resource(event, request),
        title=_title(request, verdict),
        message=_message(event, request, verdict),
        # Every field the details read was type-checked above, so building them later is safe.
        details=DeferredDetails(partial(_details, event, request, verdict, verdicts)),
        detected_at=timestamps.parse_time(event.get("stageTimestamp"))
        or timestamps.parse_time(event.get("requestReceivedTimestamp")),
    )


def _check_stage(
    stage: str, *, streaming: bool, streaming_judged_at: frozenset[str]
) -> rejection.Skip | None:
    # By default a streaming request's Panic follows its ResponseStarted: not judged twice.
    judged_at = streaming_judged_at if streaming else STAGES_COMPLETE
    if stage in judged_at:
        return None
    kind = "streaming" if streaming else "normal"
    return rejection.Skip("stage", lambda: f"a {kind} request is not judged at stage {stage}")


def _identity(
    event: Mapping[str, Any], request: rules.Request, verdict: rules.Verdict
) -> tuple[str, ...]:
    # The server picks generated names (pod-xyz12) per create, so a create identifies its object by
    # the name the client asked for: objectRef's, the request's, else its generateName prefix.
    ref_name = fields.optional_str(
        fields.optional_map(event, "objectRef"), "name", where="objectRef"
    )
    if request.resource == "namespaces":
        ref_name = request.name
    elif request.verb == "create" and not ref_name:
        requested = event.get("requestObject")
        ref_name = fields.metadata(requested, "name") or fields.metadata(requested, "generateName")
    # Non-resource requests (/version, /metrics) have no objectRef; their path names them.
    where = ref_name if request.resource else request.path
    return (
        verdict.event_type,
        request.username,
        request.verb,
        request.resource,
        request.subresource,
        request.namespace,
        where,
    )


def _resource(event: Mapping[str, Any], request: rules.Request) -> ResourceRef | None:
    if not request.resource:
        return None
    ref = fields.optional_map(event, "objectRef")
    version = fields.optional_str(ref, "apiVersion", where="objectRef")
    if version and request.api_group:
        api_version = f"{request.api_group}/{version}"
    else:
        api_version = version or resource_kinds.api_version_for(request.resource)
    kind = resource_kinds.kind_for(request.resource)
    if not kind and request.verb in ("create", "update") and not request.subresource:
        kind = _metadata_kind(request.request_object)
    return ResourceRef(
        api_version=api_version, kind=kind, name=request.name, namespace=request.namespace
    )


def _title(request: rules.Request, verdict: rules.Verdict) -> str:
    phrase = _TITLES.get(verdict.event_type, verdict.event_type)
    user = request.username or "an unknown user"
    if verdict.event_type in rules.STREAMING_SUBRESOURCES.values():
        return f"{phrase} by {user} into {request.namespace}/{request.name}"
    return f"{phrase} by {user}: {request.verb} {_target(request)}"


def _message(event: Mapping[str, Any], request: rules.Request, verdict: rules.Verdict) -> str:
    uri = fields.optional_str(event, "requestURI") or _target(request)
    code = "no response code" if request.code is None else f"response {request.code}"
    user = request.username or "an unknown user"
    return f"{user} sent {request.verb} {uri} ({code}): {'; '.join(verdict.reasons)}"


def _no_rule_message_of(event: Mapping[str, Any]) -> str:
    return _no_rule_message(read_request(event))


def _no_rule_message(request: rules.Request) -> str:
    return f"no audit rule matches {request.verb} {_target(request)}"


def _target(request: rules.Request) -> str:
    if not request.resource:
        return request.path or "a non-resource URL"
    plural = (
        f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    )
    where = "/".join(part for part in (request.namespace, request.name) if part)
    return f"{plural} {where}" if where else plural


def _details(
    event: Mapping[str, Any],
    request: rules.Request,
    verdict: rules.Verdict,
    verdicts: list[rules.Verdict],
) -> dict[str, Any]:
    annotations = event.get("annotations")
    annotations = annotations if isinstance(annotations, dict) else {}
    details: dict[str, Any] = {
        "rule": verdict.event_type,
        "reasons": list(verdict.reasons),
        "user": request.username,
        "groups": list(request.groups),
        "verb": request.verb,
        "requestURI": fields.optional_str(event, "requestURI"),
        "sourceIPs": list(fields.strings(event, "sourceIPs")),
        "userAgent": fields.optional_str(event, "userAgent"),
        "auditID": fields.required_str(event, "auditID"),
        "stage": fields.required_str(event, "stage"),
        "responseCode": request.code,
        "objectRef": dict(fields.optional_map(event, "objectRef")),
        "alsoMatched": [item.event_type for item in verdicts if item is not verdict],
        "authorizationDecision": annotations.get("authorization.k8s.io/decision"),
        "authorizationReason": annotations.get("authorization.k8s.io/reason"),
        "impersonatedUser": fields.optional_map(event, "impersonatedUser").get("username"),
    }
    return {key: value for key, value in details.items() if value not in (None, "", [], {})}


def _metadata_kind(obj: object) -> str:
    kind = obj.get("kind") if isinstance(obj, dict) else None
    return kind if isinstance(kind, str) and kind not in _NOT_OBJECT_KINDS else ""


def _shape_message(payload: object) -> str:
    if isinstance(payload, dict):
        return (
            "expected an audit Event or EventList (apiVersion audit.k8s.io/v1 or v1beta1), "
            f"got kind {payload.get('kind')!r}, apiVersion {payload.get('apiVersion')!r}"
        )
    return f"expected an audit Event or EventList object, got {type(payload).__name__}"
