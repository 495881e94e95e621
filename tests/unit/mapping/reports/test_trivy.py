"""trivy-operator report mapping (docs/design.md §3, §4)."""

# The house style puts the expected value first, which SIM300 calls Yoda.

from __future__ import annotations

import collections
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tests.harness.reports import load_reports, map_fixture
from zenwatcher.finding import Category, Finding, ResourceRef, Severity
from zenwatcher.mapping.rejection import Ignored, Rejected
from zenwatcher.mapping.reports import common, trivy


def map_file(relative: str) -> common.ReportFindings:
    """All outcomes of all reports in one fixture file, in order."""
    return map_fixture(relative, trivy.map_trivy_report)


def vuln_report(**entry: Any) -> dict[str, Any]:
    """A VulnerabilityReport for container `app` of Deployment shop/web with one entry."""
    return {
        "apiVersion": "aquasecurity.github.io/v1alpha1",
        "kind": "VulnerabilityReport",
        "metadata": {
            "name": "replicaset-web-5d9-app",
            "namespace": "shop",
            "uid": "uid-1",
            "resourceVersion": "7",
            "labels": {
                trivy.LABEL_KIND: "ReplicaSet",
                trivy.LABEL_NAME: "web-5d9",
                trivy.LABEL_NAMESPACE: "shop",
                trivy.LABEL_CONTAINER: "app",
            },
        },
        "report": {
            "updateTimestamp": "2022-10-21T20:48:15Z",
            "artifact": {"repository": "library/nginx", "tag": "1.16"},
            "registry": {"server": "index.docker.io"},
            "vulnerabilities": [
                {
                    "vulnerabilityID": "CVE-2022-1234",
                    "resource": "openssl",
                    "installedVersion": "1.1",
                    "fixedVersion": "1.2",
                    "severity": "HIGH",
                    "score": 7.5,
                    "title": "openssl: overflow",
                }
                | entry
            ],
        },
    }


def check_report(kind: str = "ConfigAuditReport", **check: Any) -> dict[str, Any]:
    """A check-style report (ConfigAudit/Rbac/Infra) about Pod shop/web-0 with one check."""
    report = vuln_report()
    report["kind"] = kind
    report["metadata"]["labels"] = {trivy.LABEL_KIND: "Pod", trivy.LABEL_NAME: "web-0"}
    report["report"] = {
        "checks": [
            {
                "checkID": "KSV001",
                "title": "Can elevate its own privileges",
                "severity": "MEDIUM",
                "success": False,
                "messages": ["should set allowPrivilegeEscalation to false"],
            }
            | check
        ]
    }
    return report


def only_finding(report: dict[str, Any]) -> Finding:
    """The single finding a report yields."""
    (finding,) = trivy.map_trivy_report(report).findings
    return finding


class TestFixtures:
    @pytest.mark.parametrize(
        ("relative", "findings", "skipped", "rejected", "duplicates"),
        [
            ("trivy/api-server-infraassessmentreport-expected.yaml", 9, 0, 0, 0),
            ("trivy/configauditreport-docs-nginx.yaml", 2, 3, 0, 0),
            ("trivy/exposedsecretreport-docs.yaml", 1, 0, 0, 1),
            ("trivy/pod-configauditreport-expected.yaml", 13, 0, 0, 0),
            ("trivy/rbacassessmentreport-docs.yaml", 1, 15, 0, 0),
            ("trivy/vulnerabilityreport-docs-nginx.yaml", 2, 0, 0, 0),
            ("trivy/vulnerabilityreportlist-operator-testdata.json", 398, 0, 0, 0),
        ],
    )
    def test_counts(
        self, relative: str, findings: int, skipped: int, rejected: int, duplicates: int
    ) -> None:
        """Each fixture yields exactly its findings, skipped, rejected and folded entries."""
        outcome = map_file(relative)
        assert (findings, skipped, rejected, duplicates) == (
            len(outcome.findings),
            len(outcome.skipped),
            len(outcome.rejected),
            outcome.duplicates,
        )

    def test_compliance_report_unsupported(self) -> None:
        """ClusterComplianceReport is not mapped."""
        (report,) = load_reports("trivy/clustercompliancereport-docs-nsa-summary.yaml")
        with pytest.raises(Ignored) as caught:
            trivy.map_trivy_report(report)
        assert "unsupported_kind" == caught.value.reason

    def test_vulnerability_list(self) -> None:
        """The operator's List: 398 distinct vulnerabilities, UNKNOWN mapped to info."""
        findings = map_file("trivy/vulnerabilityreportlist-operator-testdata.json").findings
        assert 398 == len({finding.name for finding in findings})
        assert {"critical": 40, "high": 86, "medium": 99, "low": 170, "info": 3} == dict(
            collections.Counter(finding.severity.value for finding in findings)
        )
        assert {("vulnerability", Category.SECURITY, "trivy")} == {
            (finding.event_type, finding.category, finding.source) for finding in findings
        }

    def test_vulnerability_fields(self) -> None:
        """The docs' nginx report: workload from labels, image and title with the container."""
        first, _ = map_file("trivy/vulnerabilityreport-docs-nginx.yaml").findings
        assert (
            ResourceRef(
                api_version="apps/v1",
                kind="ReplicaSet",
                name="nginx-6d4cf56db6",
                namespace="default",
                uid="aa345200-cf24-443a-8f11-ddb438ff8659",
            )
            == first.resource
        )
        assert "CVE-2019-20367 in libbsd0 0.9.1-2 (nginx)" == first.title
        assert Severity.CRITICAL == first.severity
        assert "index.docker.io/library/nginx:1.16" == first.details["image"]
        assert "0.9.1-2+deb10u1" == first.details["fixedVersion"]

    def test_config_audit_fields(self) -> None:
        """Failed config checks are compliance findings on the labelled workload."""
        findings = map_file("trivy/configauditreport-docs-nginx.yaml").findings
        assert ["notReadOnlyRootFilesystem", "privilegeEscalationAllowed"] == [
            finding.details["checkID"] for finding in findings
        ]
        assert {("config_audit", Category.COMPLIANCE)} == {
            (finding.event_type, finding.category) for finding in findings
        }
        assert [Severity.LOW, Severity.CRITICAL] == [finding.severity for finding in findings]
        assert datetime(2021, 5, 20, 12, 38, 10, tzinfo=UTC) == findings[0].detected_at

    def test_infra_workload_from_owner(self) -> None:
        """Without a name label the workload name comes from the first owner reference."""
        finding = map_file("trivy/api-server-infraassessmentreport-expected.yaml").findings[0]
        assert ("infra_assessment", Category.COMPLIANCE) == (finding.event_type, finding.category)
        assert (
            ResourceRef(
                api_version="v1", kind="Pod", name="my-pod-kube-apiserver", namespace="kube-system"
            )
            == finding.resource
        )

    def test_rbac_name_from_annotation(self) -> None:
        """A long Role name is read from the trivy-operator.resource.name annotation."""
        (finding,) = map_file("trivy/rbacassessmentreport-docs.yaml").findings
        assert ("rbac_assessment", Category.SECURITY) == (finding.event_type, finding.category)
        assert ("Role", "default", "system:controller:token-cleaner") == finding.identity[1:4]
        assert {"passed"} == {
            v.reason for v in map_file("trivy/rbacassessmentreport-docs.yaml").skipped
        }

    def test_exposed_secret_fields(self) -> None:
        """The secret's `match` text never reaches the finding; duplicates fold into one."""
        (finding,) = map_file("trivy/exposedsecretreport-docs.yaml").findings
        assert ("exposed_secret", Severity.HIGH) == (finding.event_type, finding.severity)
        assert "Stripe secret in /app/config/secret.yaml (app)" == finding.title
        assert 2 == finding.details["occurrences"]
        assert "match" not in finding.details
        shown = orjson.dumps(dict(finding.details)).decode() + finding.title + finding.message
        assert [] == [word for word in ("publishable_key", "secret_key", "*") if word in shown]


class TestEntries:
    @pytest.mark.parametrize(
        ("word", "severity"),
        [("UNKNOWN", Severity.INFO), (None, Severity.INFO), ("LOW", Severity.LOW)],
    )
    def test_severity(self, word: Any, severity: Severity) -> None:
        """trivy's UNKNOWN (or no severity) is info; other words map as usual."""
        assert severity == only_finding(vuln_report(severity=word)).severity

    def test_bad_entries_cost_only_themselves(self) -> None:
        """A non-object or ID-less entry is rejected while the good entries still map."""
        report = vuln_report()
        report["report"]["vulnerabilities"] += ["junk", {"resource": "zlib"}]
        outcome = trivy.map_trivy_report(report)
        assert 1 == len(outcome.findings)
        assert ["invalid_entry", "invalid_entry"] == [v.reason for v in outcome.rejected]

    @pytest.mark.parametrize(
        ("success", "reason"), [(None, "unknown_result"), ("no", "unknown_result")]
    )
    def test_check_without_success(self, success: Any, reason: str) -> None:
        """A check whose success is not a boolean is rejected."""
        outcome = trivy.map_trivy_report(check_report(success=success))
        assert [reason] == [verdict.reason for verdict in outcome.rejected]

    def test_passed_check_skipped(self) -> None:
        """A successful check is skipped as passed."""
        outcome = trivy.map_trivy_report(check_report(success=True))
        assert ([], ["passed"]) == (outcome.findings, [v.reason for v in outcome.skipped])

    def test_entries_not_a_list(self) -> None:
        """A report whose entry list is not a list is rejected as a whole."""
        report = vuln_report()
        report["report"]["vulnerabilities"] = {"oops": 1}
        with pytest.raises(Rejected) as caught:
            trivy.map_trivy_report(report)
        assert "invalid_shape" == caught.value.reason

    def test_empty_report(self) -> None:
        """A report without a body yields nothing."""
        outcome = trivy.map_trivy_report({"kind": "VulnerabilityReport"})
        assert ([], [], []) == (outcome.findings, outcome.skipped, outcome.rejected)

    def test_workload_falls_back_to_owner_and_namespace(self) -> None:
        """Without labels the workload is the first owner, in the report's namespace."""
        report = vuln_report()
        report["metadata"]["labels"] = {}
        report["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": "pod-uid"}
        ]
        assert (
            ResourceRef(api_version="v1", kind="Pod", name="web-0", namespace="shop", uid="pod-uid")
            == only_finding(report).resource
        )

    def test_cluster_report_has_no_namespace(self) -> None:
        """A cluster report does not lend its (absent) namespace to the workload."""
        report = check_report("ClusterConfigAuditReport")
        report["metadata"]["labels"] = {trivy.LABEL_KIND: "ClusterRole", trivy.LABEL_NAME: "admin"}
        assert "" == only_finding(report).namespace

    def test_report_without_workload(self) -> None:
        """A partial report naming no workload is its own subject."""
        report = vuln_report()
        report["metadata"]["labels"] = {}
        finding = only_finding(report)
        assert finding.resource is None
        assert ("VulnerabilityReport", "shop", "replicaset-web-5d9-app") == finding.identity[1:4]


class TestIdentity:
    @pytest.mark.parametrize(
        "change",
        [
            {"metadata": {"uid": "uid-2", "resourceVersion": "99"}},
            {"report": {"updateTimestamp": "2030-01-01T00:00:00Z"}},
            {"entry": {"fixedVersion": "1.3", "score": 9.9, "title": "new", "severity": "LOW"}},
        ],
    )
    def test_volatile_fields_keep_name(self, change: dict[str, Any]) -> None:
        """Report uid/resourceVersion, update time, fix version, score and text keep the name."""
        report = vuln_report(**change.get("entry", {}))
        report["metadata"] |= change.get("metadata", {})
        report["report"] |= change.get("report", {})
        assert only_finding(vuln_report()).name == only_finding(report).name

    @pytest.mark.parametrize(
        "entry",
        [{"vulnerabilityID": "CVE-2022-9999"}, {"resource": "zlib"}, {"installedVersion": "1.1a"}],
    )
    def test_vulnerability_changes_name(self, entry: dict[str, Any]) -> None:
        """Vulnerability ID, package and installed version are part of the identity."""
        assert only_finding(vuln_report()).name != only_finding(vuln_report(**entry)).name

    @pytest.mark.parametrize(
        ("label", "value"),
        [
            (trivy.LABEL_CONTAINER, "sidecar"),
            (trivy.LABEL_NAME, "web-6e0"),
            (trivy.LABEL_NAMESPACE, "other"),
            (trivy.LABEL_KIND, "StatefulSet"),
        ],
    )
    def test_workload_changes_name(self, label: str, value: str) -> None:
        """Another workload or container is another finding."""
        report = vuln_report()
        report["metadata"]["labels"][label] = value
        assert only_finding(vuln_report()).name != only_finding(report).name

    def test_check_identity(self) -> None:
        """A check is identified by workload and checkID, not its messages."""
        base = only_finding(check_report())
        assert base.name == only_finding(check_report(messages=["other text"])).name
        assert base.name != only_finding(check_report(checkID="KSV002")).name
        assert ("config_audit", "Pod", "shop", "web-0", "KSV001") == base.identity

    def test_event_type_separates_report_kinds(self) -> None:
        """The same check on the same workload in ConfigAudit and InfraAssessment differs."""
        audit = only_finding(check_report("ConfigAuditReport"))
        infra = only_finding(check_report("InfraAssessmentReport"))
        assert audit.name != infra.name

    def test_secret_identity(self) -> None:
        """A secret is identified by workload, container, ruleID and target."""
        report = vuln_report()
        report["kind"] = "ExposedSecretReport"
        report["report"] = {
            "secrets": [{"ruleID": "aws-key", "target": "/app/.env", "match": "AKIA****"}]
        }
        finding = only_finding(report)
        expected = (
            "exposed_secret",
            "ReplicaSet",
            "shop",
            "web-5d9",
            "app",
            "aws-key",
            "/app/.env",
        )
        assert expected == finding.identity
        assert "AKIA" not in orjson.dumps(dict(finding.details)).decode()

    def test_origin_key_survives_uid_change(self) -> None:
        """trivy's delete-and-recreate (new uid) keeps the origin key."""
        report = vuln_report()
        report["metadata"]["uid"] = "uid-2"
        before, after = only_finding(vuln_report()).origin, only_finding(report).origin
        assert (before and before.key) == (after and after.key)
        assert ("uid-1", "uid-2") == (before and before.uid, after and after.uid)
