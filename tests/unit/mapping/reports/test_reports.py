"""Report kinds, document splitting, dispatch, origin keys and shared helpers."""

# The house style puts the expected value first, which SIM300 calls Yoda.

from __future__ import annotations

import functools
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

from tests.harness.paths import REPO_ROOT, SHARED_FIXTURES
from zenwatcher.finding import Category, Finding, Severity
from zenwatcher.mapping.rejection import Ignored, Rejected
from zenwatcher.mapping.reports import common, dispatch, kinds


@functools.cache
def crd_kinds() -> dict[str, kinds.ReportKind]:
    """Every kind the shared CRDs declare, keyed by kind, with the storage version."""
    found = {}
    for path in sorted((SHARED_FIXTURES / "crds").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))["spec"]
        (version,) = [v["name"] for v in spec["versions"] if v.get("storage")]
        names = spec["names"]
        found[names["kind"]] = kinds.ReportKind(
            spec["group"], version, names["kind"], names["plural"], spec["scope"] == "Namespaced"
        )
    return found


def finding(severity: Severity = Severity.LOW, **identity_extra: str) -> Finding:
    """A minimal report finding."""
    return Finding(
        source="trivy",
        category=Category.SECURITY,
        severity=severity,
        event_type="vulnerability",
        identity=("vulnerability", *identity_extra.values()),
        details={"score": 1},
    )


class TestReportKinds:
    @pytest.mark.parametrize("known", kinds.REPORT_KINDS, ids=lambda known: known.kind)
    def test_matches_crd(self, known: kinds.ReportKind) -> None:
        """Group, version, plural and scope are those of the upstream CRD."""
        assert crd_kinds()[known.kind] == known

    def test_every_crd_but_compliance(self) -> None:
        """We watch every shared report CRD except ClusterComplianceReport."""
        watched = {known.kind for known in kinds.REPORT_KINDS}
        assert {"ClusterComplianceReport"} == set(crd_kinds()) - watched
        assert 13 == len(kinds.REPORT_KINDS)

    def test_api_version(self) -> None:
        """api_version joins group and version."""
        assert "wgpolicyk8s.io/v1alpha2" == kinds.REPORT_KINDS[0].api_version


class TestSplitDocuments:
    def test_v1_list(self) -> None:
        """A `kind: List` yields its items."""
        assert [{"a": 1}, {"b": 2}] == dispatch.split_documents(
            {"apiVersion": "v1", "kind": "List", "items": [{"a": 1}, {"b": 2}]}
        )

    def test_typed_list(self) -> None:
        """A `PolicyReportList` yields its items."""
        assert [{"a": 1}] == dispatch.split_documents(
            {"kind": "PolicyReportList", "items": [{"a": 1}]}
        )

    def test_single_object(self) -> None:
        """A single object is a list of one."""
        report = {"kind": "PolicyReport"}
        assert [report] == dispatch.split_documents(report)

    def test_empty_and_arrays(self) -> None:
        """An empty YAML document yields nothing; a JSON array yields its objects."""
        assert [] == dispatch.split_documents(None)
        assert [{"a": 1}, {"b": 2}] == dispatch.split_documents(
            [{"a": 1}, {"kind": "List", "items": [{"b": 2}]}]
        )

    def test_list_without_items(self) -> None:
        """A List without items stays one object, for map_report to judge."""
        doc = {"kind": "List", "items": "nope"}
        assert [doc] == dispatch.split_documents(doc)

    def test_fixtures_split(self) -> None:
        """The shared fixtures split into the expected number of report objects."""
        counts = {}
        for path in sorted(
            [*SHARED_FIXTURES.glob("kyverno/*.yaml"), *SHARED_FIXTURES.glob("trivy/*.yaml")]
        ):
            docs = yaml.safe_load_all(path.read_text(encoding="utf-8"))
            counts[path.name] = len([obj for doc in docs for obj in dispatch.split_documents(doc)])
        assert 2 == counts["clusterpolicyreport-namespaces-fail-pass.yaml"]
        assert 2 == counts["policyreportlist-vap-fail-pass.yaml"]
        assert 1 == counts["api-server-infraassessmentreport-expected.yaml"]


class TestMapReport:
    def test_dispatch_policy(self) -> None:
        """wgpolicyk8s.io and openreports.io reports go to the policy-report mapper."""
        for api_version, kind in [
            ("wgpolicyk8s.io/v1alpha2", "PolicyReport"),
            ("openreports.io/v1alpha1", "ClusterReport"),
        ]:
            report = {
                "apiVersion": api_version,
                "kind": kind,
                "results": [{"policy": "p", "result": "fail"}],
            }
            (only,) = dispatch.map_report(report).findings
            assert "policy_violation" == only.event_type

    def test_dispatch_trivy(self) -> None:
        """aquasecurity.github.io reports go to the trivy mapper."""
        report = {
            "apiVersion": "aquasecurity.github.io/v1alpha1",
            "kind": "ClusterRbacAssessmentReport",
            "report": {"checks": [{"checkID": "KSV044", "success": False}]},
        }
        (only,) = dispatch.map_report(report).findings
        assert "rbac_assessment" == only.event_type

    def test_other_version_of_group(self) -> None:
        """Dispatch is by group and kind, so a newer version of a kind still maps."""
        report = {"apiVersion": "wgpolicyk8s.io/v1beta1", "kind": "PolicyReport", "results": []}
        assert [] == dispatch.map_report(report).findings

    @pytest.mark.parametrize(
        ("api_version", "kind"),
        [
            ("aquasecurity.github.io/v1alpha1", "ClusterComplianceReport"),
            ("v1", "ConfigMap"),
            ("example.com/v1", "PolicyReport"),
        ],
    )
    def test_unsupported_kind(self, api_version: str, kind: str) -> None:
        """Kinds we do not map are ignored with reason unsupported_kind."""
        with pytest.raises(Ignored) as caught:
            dispatch.map_report({"apiVersion": api_version, "kind": kind})
        assert "unsupported_kind" == caught.value.reason

    @pytest.mark.parametrize("report", [None, "text", 3, ["a"], {"kind": "PolicyReport"}, {}])
    def test_invalid_shape(self, report: Any) -> None:
        """Non-objects, and objects without apiVersion or kind, are rejected as invalid_shape."""
        with pytest.raises(Rejected) as caught:
            dispatch.map_report(report)
        assert "invalid_shape" == caught.value.reason


class TestReportSource:
    @pytest.mark.parametrize(
        ("api_version", "source"),
        [
            ("wgpolicyk8s.io/v1alpha2", "kyverno"),
            ("openreports.io/v1alpha1", "kyverno"),
            ("aquasecurity.github.io/v1alpha1", "trivy"),
            ("v1", ""),
            ("", ""),
        ],
    )
    def test_source(self, api_version: str, source: str) -> None:
        """Policy-report groups are kyverno's, trivy-operator's group is trivy's."""
        assert source == kinds.report_source(api_version)


class TestOriginKey:
    def test_label_safe(self) -> None:
        """The key is 16 lowercase hex characters."""
        key = common.origin_key("aquasecurity.github.io/v1alpha1", "VulnerabilityReport", "ns", "n")
        assert re.fullmatch(r"[0-9a-f]{16}", key)

    def test_ignores_version(self) -> None:
        """Only the group counts, so a version upgrade keeps the key."""
        assert common.origin_key("wgpolicyk8s.io/v1alpha2", "PolicyReport", "a", "b") == (
            common.origin_key("wgpolicyk8s.io/v1beta1", "PolicyReport", "a", "b")
        )

    @pytest.mark.parametrize(
        "other",
        [
            ("openreports.io/v1alpha1", "PolicyReport", "a", "b"),
            ("wgpolicyk8s.io/v1alpha2", "ClusterPolicyReport", "a", "b"),
            ("wgpolicyk8s.io/v1alpha2", "PolicyReport", "x", "b"),
            ("wgpolicyk8s.io/v1alpha2", "PolicyReport", "a", "x"),
        ],
    )
    def test_differs_by_report(self, other: tuple[str, str, str, str]) -> None:
        """Group, kind, namespace and name each change the key."""
        assert common.origin_key("wgpolicyk8s.io/v1alpha2", "PolicyReport", "a", "b") != (
            common.origin_key(*other)
        )

    def test_origin_of_ignores_uid(self) -> None:
        """A recreated report (new uid) has the same key and its new uid."""
        report = {"apiVersion": "v1", "kind": "K", "metadata": {"name": "n", "uid": "1"}}
        recreated = report | {"metadata": {"name": "n", "uid": "2"}}
        assert common.origin_of(report).key == common.origin_of(recreated).key
        assert "2" == common.origin_of(recreated).uid


class TestReportTime:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ({"seconds": 1707394871, "nanos": 0}, datetime(2024, 2, 8, 12, 21, 11, tzinfo=UTC)),
            ({"seconds": 1707394871}, datetime(2024, 2, 8, 12, 21, 11, tzinfo=UTC)),
            ("2022-10-21T20:48:15Z", datetime(2022, 10, 21, 20, 48, 15, tzinfo=UTC)),
            (datetime(2022, 1, 1, 1, 0), datetime(2022, 1, 1, 1, 0, tzinfo=UTC)),
            (
                datetime(2022, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=2))),
                datetime(2022, 1, 1, 1, 0, tzinfo=UTC),
            ),
        ],
    )
    def test_parses(self, value: Any, expected: datetime) -> None:
        """Protobuf objects, RFC 3339 text and YAML's datetimes become aware UTC."""
        assert expected == common.report_time(value)

    @pytest.mark.parametrize(
        "value", [None, "", "soon", {"seconds": 0}, {"seconds": True}, {"seconds": 1, "nanos": "x"}]
    )
    def test_unusable(self, value: Any) -> None:
        """Unusable times are None, never an error."""
        assert common.report_time(value) is None


class TestMergeDuplicates:
    def test_distinct_kept(self) -> None:
        """Distinct identities are all kept, in order, untouched."""
        findings = [finding(a="1"), finding(a="2")]
        assert (findings, 0) == common.merge_duplicates(findings)

    def test_same_identity_folds(self) -> None:
        """Same identity: the first is kept at the highest severity, with occurrences."""
        merged, duplicates = common.merge_duplicates(
            [finding(Severity.LOW, a="1"), finding(Severity.HIGH, a="1"), finding(a="1")]
        )
        (only,) = merged
        assert (Severity.HIGH, {"score": 1, "occurrences": 3}, 2) == (
            only.severity,
            dict(only.details),
            duplicates,
        )


class TestImports:
    @pytest.mark.parametrize("module", ["kinds", "common", "policy", "trivy", "dispatch"])
    def test_import_first(self, module: str) -> None:
        """Each report module imports first in a fresh interpreter."""
        code = (
            f"import zenwatcher.mapping.reports.{module}\n"
            "from zenwatcher.mapping.reports import dispatch, kinds\n"
            "for known in kinds.REPORT_KINDS:\n"
            "    dispatch.map_report({'apiVersion': known.api_version, 'kind': known.kind})\n"
        )
        subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)

    def test_no_io_imports(self) -> None:
        """The mappers import neither aiohttp nor kubernetes_asyncio."""
        code = (
            "import sys, zenwatcher.mapping.reports.dispatch; "
            "assert not {'aiohttp', 'kubernetes_asyncio'} & set(sys.modules), sorted(sys.modules)"
        )
        subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
