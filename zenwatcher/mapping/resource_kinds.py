"""Kinds and API versions of well-known Kubernetes resources, by their URL plural.

Audit events and Falco's k8s_audit alerts name the affected object by its plural ("pods"), while an
Observation's `spec.resource` wants `apiVersion` and `kind`. Plurals not listed here keep an empty
kind rather than a guessed one.
"""

from __future__ import annotations

_CORE = "v1"
_APPS = "apps/v1"
_BATCH = "batch/v1"
_RBAC = "rbac.authorization.k8s.io/v1"
_NETWORKING = "networking.k8s.io/v1"
_STORAGE = "storage.k8s.io/v1"
_ADMISSION = "admissionregistration.k8s.io/v1"

_KINDS: dict[str, tuple[str, str]] = {
    "pods": (_CORE, "Pod"),
    "services": (_CORE, "Service"),
    "secrets": (_CORE, "Secret"),
    "configmaps": (_CORE, "ConfigMap"),
    "namespaces": (_CORE, "Namespace"),
    "serviceaccounts": (_CORE, "ServiceAccount"),
    "nodes": (_CORE, "Node"),
    "persistentvolumes": (_CORE, "PersistentVolume"),
    "persistentvolumeclaims": (_CORE, "PersistentVolumeClaim"),
    "replicationcontrollers": (_CORE, "ReplicationController"),
    "podtemplates": (_CORE, "PodTemplate"),
    "endpoints": (_CORE, "Endpoints"),
    "events": (_CORE, "Event"),
    "deployments": (_APPS, "Deployment"),
    "statefulsets": (_APPS, "StatefulSet"),
    "daemonsets": (_APPS, "DaemonSet"),
    "replicasets": (_APPS, "ReplicaSet"),
    "jobs": (_BATCH, "Job"),
    "cronjobs": (_BATCH, "CronJob"),
    "roles": (_RBAC, "Role"),
    "clusterroles": (_RBAC, "ClusterRole"),
    "rolebindings": (_RBAC, "RoleBinding"),
    "clusterrolebindings": (_RBAC, "ClusterRoleBinding"),
    "networkpolicies": (_NETWORKING, "NetworkPolicy"),
    "ingresses": (_NETWORKING, "Ingress"),
    "volumeattachments": (_STORAGE, "VolumeAttachment"),
    "storageclasses": (_STORAGE, "StorageClass"),
    "mutatingwebhookconfigurations": (_ADMISSION, "MutatingWebhookConfiguration"),
    "validatingwebhookconfigurations": (_ADMISSION, "ValidatingWebhookConfiguration"),
    "certificatesigningrequests": ("certificates.k8s.io/v1", "CertificateSigningRequest"),
    "poddisruptionbudgets": ("policy/v1", "PodDisruptionBudget"),
    "customresourcedefinitions": ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    "leases": ("coordination.k8s.io/v1", "Lease"),
}


def kind_for(plural: str) -> str:
    """The kind of a well-known resource plural ("pods" -> "Pod"), else ""."""
    return _KINDS.get(plural.lower(), ("", ""))[1]


def api_version_for(plural: str) -> str:
    """The current apiVersion of a well-known resource plural ("jobs" -> "batch/v1"), else ""."""
    return _KINDS.get(plural.lower(), ("", ""))[0]
