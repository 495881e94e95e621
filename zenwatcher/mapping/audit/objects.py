"""Looks inside the objects an audit event carries: pod specs, ConfigMap data, RBAC rules.

Each function takes a decoded object of unknown shape and returns human-readable reasons (empty when
nothing is wrong), so the audit rules stay short and every finding says *why* it matched.
Reasons never quote a value that might be a credential.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

# Where each workload keeps its pod template's spec (docs/design.md §4, privileged_pod).
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "pods": ("spec",),
    "podtemplates": ("template", "spec"),
    "deployments": ("spec", "template", "spec"),
    "statefulsets": ("spec", "template", "spec"),
    "daemonsets": ("spec", "template", "spec"),
    "replicasets": ("spec", "template", "spec"),
    "replicationcontrollers": ("spec", "template", "spec"),
    "jobs": ("spec", "template", "spec"),
    "cronjobs": ("spec", "jobTemplate", "spec", "template", "spec"),
}
WORKLOAD_RESOURCES = frozenset(_POD_SPEC_PATHS)
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")

# Mounting one of these directories, anything under it, or any directory above it (which contains
# it) exposes the node. `/` is only sensitive exactly, or every hostPath would be.
_SENSITIVE_TREES = ("/etc", "/proc", "/root", "/var/lib/kubelet", "/var/run/containerd")
_SENSITIVE_FILES = ("/var/run/docker.sock",)

# Key names and `name = value` / `name: value` text that look like credentials.
_CREDENTIAL_KEY = re.compile(
    r"passw(?:or)?d|passphrase|token|secret|api[-_]?key|access[-_]?key|private[-_]?key|credential",
    re.IGNORECASE,
)
_CREDENTIAL_ASSIGNMENT = re.compile(
    r"(passw(?:or)?d|passphrase|token|secret|api[-_]?key|access[-_]?key(?:[-_]?id)?"
    r"|private[-_]?key|credentials?)[\"']?[ \t]*[:=][ \t]*[^\s]",
    re.IGNORECASE,
)
_PRIVATE_KEY_PEM = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")

_SECRET_WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection", "*"})
_EXEC_RESOURCES = frozenset({"pods/exec", "pods/*"})


def pod_spec_of(resource: str, obj: object) -> Mapping[str, Any] | None:
    """The pod spec inside a pod or workload object (or a merge patch of one), if there is one."""
    path = _POD_SPEC_PATHS.get(resource)
    if path is None:
        return None
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj if isinstance(obj, dict) else None


def privileged_reasons(spec: Mapping[str, Any]) -> list[str]:
    """Why a pod spec is privileged: privileged containers, host namespaces, sensitive hostPaths."""
    reasons: list[str] = []
    for list_name in _CONTAINER_LISTS:
        for container in _dicts(spec.get(list_name)):
            context = container.get("securityContext")
            if isinstance(context, dict) and context.get("privileged") is True:
                reasons.append(f"{list_name[:-1]} {container.get('name', '?')} is privileged")
    reasons.extend(f"{key}: true" for key in _HOST_NAMESPACES if spec.get(key) is True)
    for volume in _dicts(spec.get("volumes")):
        host_path = volume.get("hostPath")
        path = host_path.get("path") if isinstance(host_path, dict) else None
        if isinstance(path, str) and sensitive_host_path(path):
            reasons.append(f"hostPath volume {volume.get('name', '?')} mounts {path}")
    return reasons


def sensitive_host_path(path: str) -> bool:
    """Whether mounting this node path exposes one of docs/design.md §4's sensitive paths."""
    normal = _normal_path(path)
    if not normal:
        return False
    if normal == "/":
        return True
    for tree in _SENSITIVE_TREES:
        if _same_or_under(normal, tree) or _same_or_under(tree, normal):
            return True
    return any(_same_or_under(file, normal) for file in _SENSITIVE_FILES)


def _normal_path(path: str) -> str:
    text = path.strip()
    if not text.startswith("/"):
        return ""
    # "//etc/" and "/etc/../etc" are /etc; /run is where /var/run points on every current distro.
    normal = posixpath.normpath(re.sub(r"/+", "/", text))
    if normal == "/run" or normal.startswith("/run/"):
        normal = "/var" + normal
    return normal


def _same_or_under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def credential_reasons(obj: object) -> list[str]:
    """Which ConfigMap keys look like credentials, by key name or by value (never the value)."""
    if not isinstance(obj, dict):
        return []
    reasons: list[str] = []
    data = obj.get("data")
    for key, value in (data if isinstance(data, dict) else {}).items():
        if _CREDENTIAL_KEY.search(str(key)):
            reasons.append(f"data key {key} is named like a credential")
        elif isinstance(value, str) and (hint := _credential_hint(value)):
            reasons.append(f"data key {key} holds {hint}")
    binary = obj.get("binaryData")
    # binaryData values are base64 blobs; only their key names are judged.
    reasons.extend(
        f"binaryData key {key} is named like a credential"
        for key in (binary if isinstance(binary, dict) else ())
        if _CREDENTIAL_KEY.search(str(key))
    )
    return reasons


def _credential_hint(value: str) -> str:
    if _PRIVATE_KEY_PEM.search(value):
        return "a PEM private key"
    match = _CREDENTIAL_ASSIGNMENT.search(value)
    return f"a credential-like setting ({match.group(1).lower()})" if match else ""


def rbac_wildcard_reasons(obj: object) -> list[str]:
    """Which rules of a (Cluster)Role use `*`, grant pods/exec, or grant writes on secrets."""
    rules = obj.get("rules") if isinstance(obj, dict) else None
    reasons: list[str] = []
    for index, rule in enumerate(_dicts(rules)):
        verbs = set(_strings(rule.get("verbs")))
        resources = set(_strings(rule.get("resources")))
        if "*" in verbs:
            reasons.append(f"rule {index} allows every verb")
        if "*" in resources:
            reasons.append(f"rule {index} covers every resource")
        if resources & _EXEC_RESOURCES:
            reasons.append(f"rule {index} grants pods/exec")
        if "secrets" in resources and verbs & _SECRET_WRITE_VERBS:
            reasons.append(f"rule {index} grants writes on secrets")
    return reasons


def cluster_admin_reasons(obj: object) -> list[str]:
    """Why a (Cluster)RoleBinding grants cluster-admin: its roleRef and subjects, else nothing."""
    role_ref = obj.get("roleRef") if isinstance(obj, dict) else None
    if not isinstance(role_ref, dict) or role_ref.get("name") != "cluster-admin":
        return []
    # A RoleBinding may point at a namespaced Role that merely shares the name.
    if role_ref.get("kind", "ClusterRole") != "ClusterRole":
        return []
    subjects = obj.get("subjects") if isinstance(obj, dict) else None
    names = [f"{item.get('kind', '?')}/{item.get('name', '?')}" for item in _dicts(subjects)]
    return ["roleRef ClusterRole/cluster-admin", *(f"subject {name}" for name in names)]


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
