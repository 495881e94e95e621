"""The report kinds we watch, and which tool each API group belongs to. Pure data."""

from __future__ import annotations

from typing import NamedTuple

POLICY_GROUP = "wgpolicyk8s.io"
OPENREPORTS_GROUP = "openreports.io"
TRIVY_GROUP = "aquasecurity.github.io"


class ReportKind(NamedTuple):
    """One report kind we watch, as its CRD declares it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        """`group/version`, as written in a report's `apiVersion`."""
        return f"{self.group}/{self.version}"


REPORT_KINDS: tuple[ReportKind, ...] = (
    ReportKind(POLICY_GROUP, "v1alpha2", "PolicyReport", "policyreports", True),
    ReportKind(POLICY_GROUP, "v1alpha2", "ClusterPolicyReport", "clusterpolicyreports", False),
    ReportKind(OPENREPORTS_GROUP, "v1alpha1", "Report", "reports", True),
    ReportKind(OPENREPORTS_GROUP, "v1alpha1", "ClusterReport", "clusterreports", False),
    ReportKind(TRIVY_GROUP, "v1alpha1", "VulnerabilityReport", "vulnerabilityreports", True),
    ReportKind(
        TRIVY_GROUP, "v1alpha1", "ClusterVulnerabilityReport", "clustervulnerabilityreports", False
    ),
    ReportKind(TRIVY_GROUP, "v1alpha1", "ConfigAuditReport", "configauditreports", True),
    ReportKind(
        TRIVY_GROUP, "v1alpha1", "ClusterConfigAuditReport", "clusterconfigauditreports", False
    ),
    ReportKind(TRIVY_GROUP, "v1alpha1", "ExposedSecretReport", "exposedsecretreports", True),
    ReportKind(TRIVY_GROUP, "v1alpha1", "RbacAssessmentReport", "rbacassessmentreports", True),
    ReportKind(
        TRIVY_GROUP,
        "v1alpha1",
        "ClusterRbacAssessmentReport",
        "clusterrbacassessmentreports",
        False,
    ),
    ReportKind(TRIVY_GROUP, "v1alpha1", "InfraAssessmentReport", "infraassessmentreports", True),
    ReportKind(
        TRIVY_GROUP,
        "v1alpha1",
        "ClusterInfraAssessmentReport",
        "clusterinfraassessmentreports",
        False,
    ),
)

# Which tool a group's reports belong to, for `convert --source`.
_SOURCES = {POLICY_GROUP: "kyverno", OPENREPORTS_GROUP: "kyverno", TRIVY_GROUP: "trivy"}
# The tools whose reports we read, as `convert --source` names them.
REPORT_TOOLS: tuple[str, ...] = tuple(dict.fromkeys(_SOURCES.values()))


def group_of(api_version: str) -> str:
    """The API group of `group/version`; "" for the core group (`v1`)."""
    group, _, version = api_version.rpartition("/")
    return group if version else ""


def find_kind(api_version: str, kind: str) -> ReportKind | None:
    """The watched kind with this group and kind, any version; None if we do not map it."""
    group = group_of(api_version)
    return next(
        (known for known in REPORT_KINDS if (known.group, known.kind) == (group, kind)), None
    )


def report_source(api_version: str) -> str:
    """ "kyverno" for policy-report groups, "trivy" for trivy-operator's, "" for any other."""
    return _SOURCES.get(group_of(api_version), "")
