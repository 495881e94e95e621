"""PolicyReport, ClusterPolicyReport and openreports Report mapping (docs/design.md §3, §4)."""

# The house style puts the expected value first, which SIM300 calls Yoda.

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.harness.reports import map_fixture
from zenwatcher.finding import Category, Finding, ResourceRef, Severity
from zenwatcher.mapping.rejection import Rejected
from zenwatcher.mapping.reports import common, policy


def map_file(relative: str) -> common.ReportFindings:
    """All outcomes of all reports in one fixture file, in order."""
    return map_fixture(relative, policy.map_policy_report)


def only_finding(report: dict[str, Any]) -> Finding:
    """The single finding a report yields."""
    (finding,) = policy.map_policy_report(report).findings
    return finding


def pod_report(**result: Any) -> dict[str, Any]:
    """A namespaced PolicyReport about one Pod with one result (`fail` unless overridden)."""
    return {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {
            "name": "3f0a",
            "namespace": "shop",
            "uid": "report-uid-1",
            "resourceVersion": "100",
        },
        "scope": {"apiVersion": "v1", "kind": "Pod", "name": "web-0", "namespace": "shop"},
        "results": [
            {
                "policy": "require-labels",
                "rule": "check-team",
                "result": "fail",
                "message": "label team is required",
                "source": "kyverno",
                "timestamp": {"seconds": 1701868762, "nanos": 0},
            }
            | result
        ],
    }


class TestFixtures:
    @pytest.mark.parametrize(
        ("relative", "findings", "skipped", "rejected"),
        [
            ("kyverno/clusterpolicyreport-cli-merged-fail.yaml", 1, 0, 0),
            ("kyverno/clusterpolicyreport-namespaces-fail-pass.yaml", 1, 3, 0),
            ("kyverno/openreports-sample-cis-k8s.yaml", 3, 0, 0),
            ("kyverno/policyreport-deployment-warn.yaml", 1, 0, 0),
            ("kyverno/policyreport-pod-pass-fail.yaml", 1, 1, 0),
            ("kyverno/policyreport-skip-exception-admission.yaml", 0, 1, 0),
            ("kyverno/policyreportlist-vap-fail-pass.yaml", 1, 1, 0),
            ("kyverno/wg-sample-cis-k8s.yaml", 3, 0, 0),
            ("kyverno/wg-sample-falco-policy.yaml", 2, 0, 0),
            ("kyverno/wg-trivy-adapter-policyreport.yaml", 0, 0, 14),
        ],
    )
    def test_counts(self, relative: str, findings: int, skipped: int, rejected: int) -> None:
        """Each fixture yields exactly its findings, skipped and rejected results."""
        outcome = map_file(relative)
        assert (findings, skipped, rejected) == (
            len(outcome.findings),
            len(outcome.skipped),
            len(outcome.rejected),
        )

    def test_cli_merged_uses_result_resources(self) -> None:
        """A scope-less cluster report takes the resource from the result's resources[]."""
        (finding,) = map_file("kyverno/clusterpolicyreport-cli-merged-fail.yaml").findings
        assert ("Deployment", "staging", "nginx-1") == (
            finding.resource.kind if finding.resource else None,
            finding.namespace,
            finding.resource.name if finding.resource else None,
        )
        assert "policy_violation" == finding.event_type
        assert Severity.MEDIUM == finding.severity
        assert "kyverno" == finding.source

    def test_namespace_scope_is_cluster_wide(self) -> None:
        """A ClusterPolicyReport scoped to a Namespace gives a finding without a namespace."""
        (finding,) = map_file("kyverno/clusterpolicyreport-namespaces-fail-pass.yaml").findings
        assert ResourceRef(api_version="v1", kind="Namespace", name="good-ns-1") == finding.resource
        assert "check-ns-labels/require-ns-env-label" == finding.title

    def test_pass_and_skip_reasons(self) -> None:
        """pass and skip results are skipped with their own word as the reason."""
        passed = map_file("kyverno/clusterpolicyreport-namespaces-fail-pass.yaml").skipped
        skipped = map_file("kyverno/policyreport-skip-exception-admission.yaml").skipped
        assert ["pass", "pass", "pass", "skip"] == [v.reason for v in [*passed, *skipped]]

    def test_openreports_keep_report_source(self) -> None:
        """kube-bench results in an openreports Report keep the report's own `source`."""
        findings = map_file("kyverno/openreports-sample-cis-k8s.yaml").findings
        assert {"kube-bench-adapter"} == {finding.source for finding in findings}
        assert ["policy_warning", "policy_violation", "policy_warning"] == [
            finding.event_type for finding in findings
        ]
        assert [Severity.LOW, Severity.MEDIUM, Severity.LOW] == [f.severity for f in findings]

    def test_results_without_resource_name_the_report(self) -> None:
        """Results with no scope and no resources have no resource; the report is the subject."""
        findings = map_file("kyverno/wg-sample-cis-k8s.yaml").findings
        assert [None, None, None] == [finding.resource for finding in findings]
        assert ("PolicyReport", "", "sample-cis-bench-api-server") == findings[0].identity[1:4]

    def test_pod_report_fields(self) -> None:
        """The docs' Pod report yields the host-namespaces violation with its details."""
        (finding,) = map_file("kyverno/policyreport-pod-pass-fail.yaml").findings
        assert "kube-system" == finding.namespace
        assert "kube-apiserver-kind-control-plane" == (finding.resource and finding.resource.name)
        assert "disallow-host-namespaces/host-namespaces" == finding.title
        assert "Pod Security Standards (Baseline)" == finding.details["category"]
        assert "0ec04a57-4c3d-492d-9278-951cd1929fe3" == (finding.origin and finding.origin.uid)
        assert datetime(2023, 12, 6, 13, 19, 22, tzinfo=UTC) == finding.detected_at

    def test_vap_result_keeps_its_source(self) -> None:
        """A ValidatingAdmissionPolicy result keeps that tool as its source slug."""
        (finding,) = map_file("kyverno/policyreportlist-vap-fail-pass.yaml").findings
        assert "validatingadmissionpolicy" == finding.source
        assert "staging-ns" == finding.namespace

    def test_falco_results(self) -> None:
        """The falco sample: a Pod finding from resources[] and a subject-less cluster one."""
        pod, cluster = map_file("kyverno/wg-sample-falco-policy.yaml").findings
        assert "my-namespace" == pod.namespace
        assert "a-pod" == (pod.resource and pod.resource.name)
        assert cluster.resource is None
        assert "kubernetes/endpoints" == cluster.details["properties"]["target"]

    def test_results_without_result_are_rejected(self) -> None:
        """The trivy adapter's results have no `result` and are each rejected, not fatal."""
        rejected = map_file("kyverno/wg-trivy-adapter-policyreport.yaml").rejected
        assert {"unknown_result"} == {verdict.reason for verdict in rejected}

    def test_partial_report_without_metadata(self) -> None:
        """A chainsaw assertion without name, uid or namespace still maps."""
        (finding,) = map_file("kyverno/policyreport-deployment-warn.yaml").findings
        assert ("policy_warning", Severity.LOW) == (finding.event_type, finding.severity)
        assert "" == finding.namespace
        assert "" == (finding.origin and finding.origin.uid)


class TestResults:
    @pytest.mark.parametrize(
        ("word", "event_type", "category", "severity"),
        [
            ("fail", "policy_violation", Category.SECURITY, Severity.MEDIUM),
            ("warn", "policy_warning", Category.SECURITY, Severity.LOW),
            ("error", "policy_error", Category.OPERATIONS, Severity.LOW),
            ("FAIL", "policy_violation", Category.SECURITY, Severity.MEDIUM),
        ],
    )
    def test_result_words(
        self, word: str, event_type: str, category: Category, severity: Severity
    ) -> None:
        """Each finding word maps to its eventType, category and default severity."""
        finding = only_finding(pod_report(result=word))
        assert (event_type, category, severity) == (
            finding.event_type,
            finding.category,
            finding.severity,
        )

    def test_severity_from_result(self) -> None:
        """result.severity wins over the default."""
        assert Severity.CRITICAL == only_finding(pod_report(severity="critical")).severity

    def test_unknown_severity_falls_back(self) -> None:
        """An unknown severity word falls back to the result word's default."""
        assert Severity.LOW == only_finding(pod_report(result="warn", severity="bogus")).severity

    @pytest.mark.parametrize("word", ["maybe", "", None, 3])
    def test_unknown_result_rejected(self, word: Any) -> None:
        """A result word that is not pass/skip/fail/warn/error is rejected as unknown_result."""
        outcome = policy.map_policy_report(pod_report(result=word))
        assert ([], ["unknown_result"]) == (outcome.findings, [v.reason for v in outcome.rejected])

    def test_bad_entries_cost_only_themselves(self) -> None:
        """A non-object result is rejected while the good results still map."""
        report = pod_report()
        report["results"] = ["junk", *report["results"], {"result": "pass"}]
        outcome = policy.map_policy_report(report)
        assert 1 == len(outcome.findings)
        assert ["invalid_entry"] == [verdict.reason for verdict in outcome.rejected]
        assert ["pass"] == [verdict.reason for verdict in outcome.skipped]

    def test_results_not_a_list(self) -> None:
        """A report whose results are not a list is rejected as a whole."""
        with pytest.raises(Rejected) as caught:
            policy.map_policy_report(pod_report() | {"results": "oops"})
        assert "invalid_shape" == caught.value.reason

    def test_no_results(self) -> None:
        """A report without results (or with null results) yields nothing."""
        assert [] == policy.map_policy_report({"kind": "PolicyReport"}).findings
        assert [] == policy.map_policy_report(pod_report() | {"results": None}).findings

    def test_source_slug_and_default(self) -> None:
        """The result's source is slugified; without one (anywhere) it is kyverno."""
        assert "kube-bench" == only_finding(pod_report(source="Kube Bench")).source
        assert "kyverno" == only_finding(pod_report(source=None)).source

    def test_details(self) -> None:
        """Details carry policy, rule, result, scored, properties and the report's name."""
        finding = only_finding(pod_report(scored=False, properties={"index": "1.2"}))
        assert {
            "policy": "require-labels",
            "rule": "check-team",
            "result": "fail",
            "scored": False,
            "properties": {"index": "1.2"},
            "reportKind": "PolicyReport",
            "reportName": "3f0a",
            "reportNamespace": "shop",
            "timestamp": {"seconds": 1701868762, "nanos": 0},
        } == dict(finding.details)

    def test_title_without_rule(self) -> None:
        """Without a rule the title is just the policy."""
        assert "require-labels" == only_finding(pod_report(rule=None)).title


class TestResources:
    def test_scope_wins_over_resources(self) -> None:
        """With a scope, result.resources[] is ignored."""
        finding = only_finding(pod_report(resources=[{"kind": "Pod", "name": "other"}]))
        assert "web-0" == (finding.resource and finding.resource.name)

    def test_one_finding_per_resource(self) -> None:
        """Without a scope, each entry of resources[] is its own finding."""
        report = pod_report(resources=[{"kind": "Pod", "name": "a"}, {"kind": "Pod", "name": "b"}])
        del report["scope"]
        findings = policy.map_policy_report(report).findings
        assert ["a", "b"] == [finding.resource.name for finding in findings if finding.resource]
        assert findings[0].name != findings[1].name

    def test_namespaced_report_lends_namespace(self) -> None:
        """A namespaced report's scope without namespace gets the report's namespace."""
        report = pod_report()
        del report["scope"]["namespace"]
        assert "shop" == only_finding(report).namespace

    def test_cluster_report_lends_no_namespace(self) -> None:
        """A cluster report's metadata namespace (if any) is never lent to its scope."""
        report = pod_report() | {"kind": "ClusterPolicyReport"}
        del report["scope"]["namespace"]
        assert "" == only_finding(report).namespace

    def test_resources_that_name_nothing(self) -> None:
        """resources[] with no usable entry rejects that result."""
        report = pod_report(resources=["junk", {"kind": "Pod"}])
        del report["scope"]
        assert ["invalid_entry"] == [v.reason for v in policy.map_policy_report(report).rejected]

    def test_uid_only_resource(self) -> None:
        """A resource without a name is identified by its uid."""
        report = pod_report(resources=[{"kind": "Pod", "uid": "u-1", "namespace": "shop"}])
        del report["scope"]
        assert ("Pod", "shop", "u-1") == only_finding(report).identity[1:4]

    def test_duplicate_results_fold(self) -> None:
        """Two results with one identity become one finding at the higher severity."""
        report = pod_report(severity="low")
        report["results"].append(report["results"][0] | {"severity": "high", "message": "again"})
        outcome = policy.map_policy_report(report)
        (finding,) = outcome.findings
        assert (Severity.HIGH, 2, 1) == (
            finding.severity,
            finding.details["occurrences"],
            outcome.duplicates,
        )


class TestIdentity:
    @pytest.mark.parametrize(
        "change",
        [
            {
                "metadata": {
                    "name": "3f0a",
                    "namespace": "shop",
                    "uid": "other",
                    "resourceVersion": "9",
                }
            },
            {"result_fields": {"message": "something else"}},
            {"result_fields": {"timestamp": {"seconds": 1, "nanos": 5}}},
            {"result_fields": {"severity": "high", "scored": False, "category": "x"}},
        ],
    )
    def test_volatile_fields_keep_name(self, change: dict[str, Any]) -> None:
        """Report uid/resourceVersion, timestamps, messages and severity do not move the name."""
        report = pod_report(**change.get("result_fields", {}))
        if "metadata" in change:
            report["metadata"] = change["metadata"]
        assert only_finding(pod_report()).name == only_finding(report).name

    @pytest.mark.parametrize(
        "result_fields",
        [{"policy": "other"}, {"rule": "other"}, {"result": "warn"}, {"result": "error"}],
    )
    def test_what_changes_name(self, result_fields: dict[str, Any]) -> None:
        """Policy, rule and the result's class (fail/warn/error) are part of the identity."""
        assert only_finding(pod_report()).name != only_finding(pod_report(**result_fields)).name

    @pytest.mark.parametrize(
        ("key", "value"), [("name", "web-1"), ("namespace", "x"), ("kind", "Job")]
    )
    def test_resource_changes_name(self, key: str, value: str) -> None:
        """Another resource is another finding."""
        report = pod_report()
        report["scope"][key] = value
        assert only_finding(pod_report()).name != only_finding(report).name

    def test_resource_uid_does_not_change_name(self) -> None:
        """A recreated resource with the same name keeps its Observation."""
        report = copy.deepcopy(pod_report())
        report["scope"]["uid"] = "new-uid"
        assert only_finding(pod_report()).name == only_finding(report).name

    def test_origin_key_survives_uid_change(self) -> None:
        """A recreated report keeps its origin key, with the new uid alongside."""
        report = pod_report()
        report["metadata"]["uid"] = "report-uid-2"
        before, after = only_finding(pod_report()).origin, only_finding(report).origin
        assert (before and before.key) == (after and after.key)
        assert "report-uid-2" == (after and after.uid)


class TestTimes:
    def test_negative_nanos(self) -> None:
        """Negative nanos (the trivy adapter) are subtracted, not rejected."""
        finding = only_finding(pod_report(timestamp={"seconds": 1628548814, "nanos": -879126275}))
        assert datetime(2021, 8, 9, 22, 40, 13, 120874, tzinfo=UTC) == finding.detected_at

    @pytest.mark.parametrize("value", [None, "garbage", {"seconds": "x"}, {"nanos": 5}, [], True])
    def test_bad_time_is_none(self, value: Any) -> None:
        """An unusable timestamp leaves detected_at unset and keeps the finding."""
        assert only_finding(pod_report(timestamp=value)).detected_at is None

    def test_rfc3339_string(self) -> None:
        """An RFC 3339 string timestamp is accepted too."""
        finding = only_finding(pod_report(timestamp="2024-01-25T11:55:23Z"))
        assert datetime(2024, 1, 25, 11, 55, 23, tzinfo=UTC) == finding.detected_at
