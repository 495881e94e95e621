"""The audit rule table of docs/design.md §4: which requests are findings, of what type and
severity.

Each rule looks at one type-checked `Request` and returns a `Verdict` or None; `matches` runs them
in table order and `most_severe` picks the one a request is reported as (ties: table order).
Object inspections (pod specs, ConfigMap data, RBAC rules) live in `objects`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zenwatcher.finding import Category, Severity
from zenwatcher.mapping.audit import objects

RBAC_GROUP = "rbac.authorization.k8s.io"
STREAMING_SUBRESOURCES = {
    "exec": "pod_exec",
    "attach": "pod_attach",
    "portforward": "pod_portforward",
}
ANONYMOUS_USER = "system:anonymous"
UNAUTHENTICATED_GROUP = "system:unauthenticated"

# WebSocket clients (kubectl >= 1.30) open exec/attach/portforward with GET, audited as verb get.
_STREAM_VERBS = frozenset({"create", "get"})
_WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# Patches are judged too: a merge patch has the object's shape (a JSON patch is a list, skipped).
_SPEC_VERBS = frozenset({"create", "update", "patch"})
_NODEPORT_VERBS = frozenset({"create"})
_NAMESPACE_VERBS = frozenset({"create", "delete"})
_ROLES = frozenset({"roles", "clusterroles"})
_BINDINGS = frozenset({"rolebindings", "clusterrolebindings"})
# Anonymous GETs the default system:public-info-viewer role allows: load-balancer health probes,
# not a breach, and audited thousands of times a day where anonymous auth is on.
_PUBLIC_INFO_PATHS = ("/healthz", "/livez", "/readyz", "/version")

_HIGH = Severity.HIGH


# Request and Verdict are built for every audited request: not frozen, since a frozen dataclass
# sets each field through object.__setattr__ (3x the cost here). Nothing mutates them. Request
# takes positional arguments too: the reader builds one per event, and twelve keywords cost
# that call more than twice what twelve positions do.
@dataclass(slots=True)
class Request:
    """The fields of one audit Event the rules look at, already type-checked.

    `namespace` and `name` are the affected object's (a Namespace is cluster-scoped, its own name in
    `name`); `path` is the requestURI without its query, which names non-resource requests.
    """

    verb: str
    username: str
    groups: tuple[str, ...]
    api_group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    path: str
    code: int | None
    request_object: Any = None
    response_object: Any = None


@dataclass(slots=True, kw_only=True)
class Verdict:
    """One rule's match: the finding's eventType, severity, category and why it matched."""

    event_type: str
    severity: Severity
    category: Category = Category.SECURITY
    reasons: tuple[str, ...] = ()


def matches(request: Request) -> list[Verdict]:
    """Every rule the request matches, in table order."""
    # Only the rules that can match the request's resource run: most audited requests are
    # controllers reading and renewing, for which that is the two rules any request can match.
    verdicts = []
    for rule in _RULES_BY_RESOURCE.get(request.resource, _RULES_FOR_ANY_RESOURCE):
        verdict = rule(request)
        if verdict is not None:
            verdicts.append(verdict)
    return verdicts


def no_rule_can_match(
    resource: str, verb: str, username: str, groups: list[str], code: int | None
) -> bool:
    """True when `matches` would find nothing for any request with this verb to `resource` by
    this user answered `code`, whatever else it holds: no rule names the resource with the verb,
    and the two rules every request meets need an anonymous user or a 403. Most audited requests
    are such (controllers listing, watching, renewing), and the reader builds no Request for
    them."""
    return (
        verb not in _VERBS_BY_RESOURCE.get(resource, _NO_VERBS)
        and code != 403
        and username != ANONYMOUS_USER
        and UNAUTHENTICATED_GROUP not in groups
    )


def most_severe(verdicts: list[Verdict]) -> Verdict:
    """The verdict a request is reported as; `max` keeps the first of equals, so table order."""
    return max(verdicts, key=lambda verdict: verdict.severity.rank)


def _is_core(request: Request, resource: str) -> bool:
    return not request.api_group and request.resource == resource


def _object(request: Request) -> object:
    """What the request wrote: its requestObject; for create/update the stored result will do."""
    if isinstance(request.request_object, dict) or request.verb == "patch":
        return request.request_object
    return request.response_object


def _pod_stream(request: Request) -> Verdict | None:
    event_type = STREAMING_SUBRESOURCES.get(request.subresource)
    if event_type is None or not _is_core(request, "pods") or request.verb not in _STREAM_VERBS:
        return None
    reason = f"{request.verb} on pods/{request.subresource}"
    return Verdict(event_type=event_type, severity=_HIGH, reasons=(reason,))


def _privileged_pod(request: Request) -> Verdict | None:
    if request.verb not in _SPEC_VERBS or request.resource not in objects.WORKLOAD_RESOURCES:
        return None
    # kubectl debug adds ephemeral containers through the pods/ephemeralcontainers subresource.
    subresources = ("", "ephemeralcontainers") if request.resource == "pods" else ("",)
    if request.subresource not in subresources:
        return None
    spec = objects.pod_spec_of(request.resource, _object(request))
    reasons = objects.privileged_reasons(spec) if spec is not None else []
    return _verdict("privileged_pod", _HIGH, reasons)


def _cluster_admin_binding(request: Request) -> Verdict | None:
    if not _is_rbac(request, _BINDINGS) or request.verb not in _SPEC_VERBS:
        return None
    reasons = objects.cluster_admin_reasons(_object(request))
    return _verdict("cluster_admin_binding", Severity.CRITICAL, reasons)


def _rbac_wildcard(request: Request) -> Verdict | None:
    if not _is_rbac(request, _ROLES) or request.verb not in _SPEC_VERBS:
        return None
    reasons = objects.rbac_wildcard_reasons(_object(request))
    return _verdict("rbac_wildcard", _HIGH, reasons)


def _rbac_change(request: Request) -> Verdict | None:
    if not _is_rbac(request, _ROLES | _BINDINGS) or request.verb not in _WRITE_VERBS:
        return None
    reason = f"{request.verb} {request.resource}"
    return Verdict(event_type="rbac_change", severity=Severity.MEDIUM, reasons=(reason,))


def _secret_write(request: Request) -> Verdict | None:
    if not _is_core(request, "secrets") or request.subresource or request.verb not in _WRITE_VERBS:
        return None
    # Secrets in kube-system hold bootstrap tokens and controller credentials.
    in_kube_system = request.namespace == "kube-system"
    severity = _HIGH if in_kube_system else Severity.MEDIUM
    reason = f"{request.verb} secrets in {request.namespace or 'all namespaces'}"
    return Verdict(event_type="secret_write", severity=severity, reasons=(reason,))


def _sensitive_configmap(request: Request) -> Verdict | None:
    if not _is_core(request, "configmaps") or request.verb not in _SPEC_VERBS:
        return None
    reasons = objects.credential_reasons(_object(request))
    return _verdict("sensitive_configmap", Severity.MEDIUM, reasons)


def _anonymous_access(request: Request) -> Verdict | None:
    anonymous = request.username == ANONYMOUS_USER or UNAUTHENTICATED_GROUP in request.groups
    # No code yet (ResponseStarted) counts as not failed.
    failed = request.code is not None and request.code >= 400
    if not anonymous or failed or _is_public_info(request):
        return None
    answer = "not refused" if request.code is None else f"answered {request.code}"
    reason = f"unauthenticated request by {request.username or UNAUTHENTICATED_GROUP} {answer}"
    return Verdict(event_type="anonymous_access", severity=_HIGH, reasons=(reason,))


def _is_public_info(request: Request) -> bool:
    if request.resource or request.verb != "get":
        return False
    path = request.path.rstrip("/")
    return any(path == known or path.startswith(known + "/") for known in _PUBLIC_INFO_PATHS)


def _forbidden_request(request: Request) -> Verdict | None:
    if request.code != 403:
        return None
    return Verdict(event_type="forbidden_request", severity=Severity.LOW, reasons=("response 403",))


def _nodeport_service(request: Request) -> Verdict | None:
    if not _is_core(request, "services") or request.subresource:
        return None
    if request.verb not in _NODEPORT_VERBS:
        return None
    obj = _object(request)
    spec = obj.get("spec") if isinstance(obj, dict) else None
    if not isinstance(spec, dict) or spec.get("type") != "NodePort":
        return None
    reason = "spec.type NodePort"
    return Verdict(event_type="nodeport_service", severity=Severity.LOW, reasons=(reason,))


def _namespace_change(request: Request) -> Verdict | None:
    if not _is_core(request, "namespaces") or request.subresource:
        return None
    if request.verb not in _NAMESPACE_VERBS:
        return None
    return Verdict(
        event_type="namespace_change",
        severity=Severity.LOW,
        category=Category.OPERATIONS,
        reasons=(f"{request.verb} namespace {request.name}",),
    )


def _is_rbac(request: Request, resources: frozenset[str]) -> bool:
    return request.api_group == RBAC_GROUP and request.resource in resources


def _verdict(event_type: str, severity: Severity, reasons: list[str]) -> Verdict | None:
    return (
        Verdict(event_type=event_type, severity=severity, reasons=tuple(reasons))
        if reasons
        else None
    )


Rule = Callable[[Request], Verdict | None]
ANY_RESOURCE: frozenset[str] = frozenset()
ANY_VERB: frozenset[str] = frozenset()

# docs/design.md §4's table, in its order (the order breaks severity ties), each rule with the
# resources and verbs it can match at all (ANY_RESOURCE: it looks at every request, and then
# `no_rule_can_match` must know what it needs).
TABLE: tuple[tuple[Rule, frozenset[str], frozenset[str]], ...] = (
    (_pod_stream, frozenset({"pods"}), _STREAM_VERBS),
    (_privileged_pod, objects.WORKLOAD_RESOURCES, _SPEC_VERBS),
    (_cluster_admin_binding, _BINDINGS, _SPEC_VERBS),
    (_rbac_wildcard, _ROLES, _SPEC_VERBS),
    (_rbac_change, _ROLES | _BINDINGS, _WRITE_VERBS),
    (_secret_write, frozenset({"secrets"}), _WRITE_VERBS),
    (_sensitive_configmap, frozenset({"configmaps"}), _SPEC_VERBS),
    (_anonymous_access, ANY_RESOURCE, ANY_VERB),
    (_forbidden_request, ANY_RESOURCE, ANY_VERB),
    (_nodeport_service, frozenset({"services"}), _NODEPORT_VERBS),
    (_namespace_change, frozenset({"namespaces"}), _NAMESPACE_VERBS),
)
RULES: tuple[Rule, ...] = tuple(rule for rule, _, _ in TABLE)


def _rules_for(resource: str | None) -> tuple[Rule, ...]:
    """The table's rules that can match `resource` (None: a resource no rule names), in order."""
    return tuple(rule for rule, resources, _ in TABLE if not resources or (resource in resources))


_RULES_FOR_ANY_RESOURCE = _rules_for(None)
_RULES_BY_RESOURCE: dict[str, tuple[Rule, ...]] = {
    resource: _rules_for(resource) for _, resources, _ in TABLE for resource in resources
}
# The verbs any rule naming the resource can match (the rules for every resource aside).
_NO_VERBS: frozenset[str] = frozenset()
_VERBS_BY_RESOURCE: dict[str, frozenset[str]] = {
    resource: frozenset().union(*(verbs for _, named, verbs in TABLE if resource in named))
    for resource in _RULES_BY_RESOURCE
}
