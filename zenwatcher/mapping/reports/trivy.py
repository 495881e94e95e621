"""trivy-operator reports (aquasecurity.github.io/v1alpha1) mapped to findings (docs/design.md §4).

One finding per vulnerability, per exposed secret, and per failed config-audit, RBAC or infra
check; passed checks are skipped. The affected workload comes from the report's
`trivy-operator.resource.*` labels. Identities start with the eventType, so a ConfigAudit and an
InfraAssessment check with the same ID on the same workload never share an Observation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from zenwatcher.finding import Category, Finding, Origin, ResourceRef, Severity
from zenwatcher.mapping import severity
from zenwatcher.mapping.rejection import Ignored, Rejected
from zenwatcher.mapping.reports import common
from zenwatcher.mapping.reports.kinds import find_kind

SOURCE = "trivy"
LABEL_KIND = "trivy-operator.resource.kind"
LABEL_NAME = "trivy-operator.resource.name"  # also an annotation when the name is too long
LABEL_NAMESPACE = "trivy-operator.resource.namespace"
LABEL_CONTAINER = "trivy-operator.container.name"

# Entry fields copied into details. Secrets leave out `match`: it is the matched line, i.e.
# possibly the secret itself.
_VULNERABILITY_FIELDS: tuple[str, ...] = (
    *("vulnerabilityID", "resource", "installedVersion", "fixedVersion", "severity", "score"),
    *("title", "primaryLink", "target", "class", "packageType", "packagePath"),
)
_CHECK_FIELDS = ("checkID", "title", "category", "severity", "description", "remediation")
_SECRET_FIELDS = ("ruleID", "category", "title", "target", "severity")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Report:
    """What every entry of one report shares."""

    event_type: str
    category: Category
    workload: ResourceRef | None
    where: tuple[str, str, str]  # identity of the workload: kind, namespace, name
    container: str
    image: str
    report_kind: str
    report_name: str
    detected_at: datetime | None
    origin: Origin

    def finding(
        self,
        *,
        severity_word: Any,
        identity: tuple[str, ...],
        title: str,
        message: str,
        details: Mapping[str, Any],
    ) -> Finding:
        """A finding of this report; trivy's UNKNOWN (or no severity) is info."""
        shared = {"reportKind": self.report_kind, "reportName": self.report_name}
        return Finding(
            source=SOURCE,
            category=self.category,
            severity=severity.map_severity(severity_word, default=Severity.INFO),
            event_type=self.event_type,
            identity=(self.event_type, *self.where, *identity),
            resource=self.workload,
            title=title,
            message=message,
            details=common.compact({**details, **shared}),
            detected_at=self.detected_at,
            origin=self.origin,
        )

    def in_container(self, title: str) -> str:
        """`title (container)`, when the report is about one container."""
        return f"{title} ({self.container})" if self.container else title


def _vulnerability(report: _Report, entry: Mapping[str, Any]) -> Finding:
    vuln_id = _required(entry, "vulnerabilityID")
    package, installed = common.text(entry, "resource"), common.text(entry, "installedVersion")
    details = _pick(entry, _VULNERABILITY_FIELDS)
    return report.finding(
        severity_word=entry.get("severity"),
        identity=(report.container, vuln_id, package, installed),
        title=report.in_container(
            f"{vuln_id} in {package} {installed}".strip() if package else vuln_id
        ),
        message=common.text(entry, "title") or common.text(entry, "description"),
        details={**details, "container": report.container, "image": report.image},
    )


def _check(report: _Report, entry: Mapping[str, Any]) -> Finding:
    check_id = _required(entry, "checkID")
    success = entry.get("success")
    if success is True:
        raise Ignored("passed", f"{check_id}: passed")
    if success is not False:
        raise Rejected("unknown_result", f"{check_id}: success {success!r}")
    listed = entry.get("messages")
    lines = listed if isinstance(listed, list) else []
    messages = [line for line in lines if isinstance(line, str) and line]
    title = common.text(entry, "title")
    details = _pick(entry, _CHECK_FIELDS)
    return report.finding(
        severity_word=entry.get("severity"),
        identity=(check_id,),
        title=f"{check_id}: {title}" if title else check_id,
        message="\n".join(messages) or common.text(entry, "description"),
        details={**details, "messages": messages, "scope": entry.get("scope")},
    )


def _secret(report: _Report, entry: Mapping[str, Any]) -> Finding:
    rule_id = _required(entry, "ruleID")
    target = common.text(entry, "target")
    name = common.text(entry, "title") or rule_id
    details = _pick(entry, _SECRET_FIELDS)
    return report.finding(
        severity_word=entry.get("severity"),
        identity=(report.container, rule_id, target),
        title=report.in_container(f"{name} secret in {target}" if target else f"{name} secret"),
        message=f"Secret matching rule {rule_id} found in {target or 'the image'}.",
        details={**details, "container": report.container, "image": report.image},
    )


@dataclass(frozen=True, slots=True)
class _Flavour:
    """How one report kind is read: where its entries are and what they become."""

    event_type: str
    category: Category
    entries: str  # the list under `report`
    map_entry: Callable[[_Report, Mapping[str, Any]], Finding]


_VULNERABILITIES = _Flavour("vulnerability", Category.SECURITY, "vulnerabilities", _vulnerability)
_CONFIG = _Flavour("config_audit", Category.COMPLIANCE, "checks", _check)
_RBAC = _Flavour("rbac_assessment", Category.SECURITY, "checks", _check)
_INFRA = _Flavour("infra_assessment", Category.COMPLIANCE, "checks", _check)
_FLAVOURS = {
    "VulnerabilityReport": _VULNERABILITIES,
    "ClusterVulnerabilityReport": _VULNERABILITIES,
    "ConfigAuditReport": _CONFIG,
    "ClusterConfigAuditReport": _CONFIG,
    "ExposedSecretReport": _Flavour("exposed_secret", Category.SECURITY, "secrets", _secret),
    "RbacAssessmentReport": _RBAC,
    "ClusterRbacAssessmentReport": _RBAC,
    "InfraAssessmentReport": _INFRA,
    "ClusterInfraAssessmentReport": _INFRA,
}


def map_trivy_report(report: Mapping[str, Any]) -> common.ReportFindings:
    """Findings of one trivy-operator report; Ignored("unsupported_kind") for other kinds."""
    kind = common.text(report, "kind")
    flavour = _FLAVOURS.get(kind)
    if flavour is None:
        raise Ignored("unsupported_kind", f"{kind or 'a report without kind'} is not mapped")
    body = report.get("report") or {}
    if not isinstance(body, Mapping):
        raise Rejected("invalid_shape", f"report must be an object, not {type(body).__name__}")
    context = _context(report, body, flavour)

    def map_entry(entry: Any) -> list[Finding]:
        if not isinstance(entry, Mapping):
            raise Rejected(
                "invalid_entry", f"an entry must be an object, not {type(entry).__name__}"
            )
        return [flavour.map_entry(context, entry)]

    return common.collect(common.entries_of(body, flavour.entries), map_entry)


def _context(report: Mapping[str, Any], body: Mapping[str, Any], flavour: _Flavour) -> _Report:
    meta = common.field_map(report, "metadata")
    kind, name = common.text(report, "kind"), common.text(meta, "name")
    known = find_kind(common.text(report, "apiVersion"), kind)
    namespaced = known.namespaced if known else True
    workload = _workload(meta, namespaced=namespaced)
    if workload is not None:
        where = (workload.kind, workload.namespace, workload.name)
    else:  # a partial report that names no workload: it is its own subject
        where = (kind, common.text(meta, "namespace"), name)
    return _Report(
        event_type=flavour.event_type,
        category=flavour.category,
        workload=workload,
        where=where,
        container=common.text(common.field_map(meta, "labels"), LABEL_CONTAINER),
        image=_image(body),
        report_kind=kind,
        report_name=name,
        detected_at=common.report_time(body.get("updateTimestamp")),
        origin=common.origin_of(report),
    )


def _workload(meta: Mapping[str, Any], *, namespaced: bool) -> ResourceRef | None:
    """The scanned object: labels first, then the first owner, then the report's namespace."""
    labels = common.field_map(meta, "labels")
    annotations = common.field_map(meta, "annotations")
    owners = meta.get("ownerReferences")
    owner = (
        owners[0] if isinstance(owners, list) and owners and isinstance(owners[0], Mapping) else {}
    )
    kind = common.text(labels, LABEL_KIND) or common.text(owner, "kind")
    name = (
        common.text(labels, LABEL_NAME)
        or common.text(annotations, LABEL_NAME)
        or common.text(owner, "name")
    )
    if not kind and not name:
        return None
    namespace = common.text(labels, LABEL_NAMESPACE)
    if not namespace and namespaced:
        namespace = common.text(meta, "namespace")
    # The owner's apiVersion and uid are only ours if it is the same object.
    same = (common.text(owner, "kind"), common.text(owner, "name")) == (kind, name)
    return ResourceRef(
        api_version=common.text(owner, "apiVersion") if same else "",
        kind=kind,
        name=name,
        namespace=namespace,
        uid=common.text(owner, "uid") if same else "",
    )


def _image(body: Mapping[str, Any]) -> str:
    """`registry/repository:tag@digest` of the scanned image, "" when the report has none."""
    artifact = common.field_map(body, "artifact")
    repository = common.text(artifact, "repository")
    if not repository:
        return ""
    server = common.text(common.field_map(body, "registry"), "server")
    image = f"{server}/{repository}" if server else repository
    if tag := common.text(artifact, "tag"):
        image += f":{tag}"
    if digest := common.text(artifact, "digest"):
        image += f"@{digest}"
    return image


def _pick(entry: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: entry.get(key) for key in keys}


def _required(entry: Mapping[str, Any], key: str) -> str:
    """An identity field the entry cannot do without."""
    value = common.text(entry, key)
    if not value:
        raise Rejected("invalid_entry", f"entry without {key}")
    return value
