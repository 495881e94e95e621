"""Report fixtures: loaded (and mapped by our own mappers), placed into a test's namespace,
and the Observations they become read back."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import yaml

from tests.harness.controlplane import cluster
from tests.harness.paths import SHARED_FIXTURES
from zenwatcher.mapping.reports import common, dispatch

POLICY = "kyverno/policyreport-pod-pass-fail.yaml"
VULNS = "trivy/vulnerabilityreport-docs-nginx.yaml"
SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "ownerReferences",
    "managedFields",
)


def load_fixture(relative: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((SHARED_FIXTURES / relative).read_text())
    return document


def load_reports(relative: str) -> list[Any]:
    """Every report object in one shared fixture file (multi-document YAML, JSON, v1 Lists)."""
    path = SHARED_FIXTURES / relative
    if path.suffix == ".json":
        docs = [orjson.loads(path.read_bytes())]
    else:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    return [obj for doc in docs for obj in dispatch.split_documents(doc)]


def map_fixture(
    relative: str, mapper: Callable[[Mapping[str, Any]], common.ReportFindings]
) -> common.ReportFindings:
    """All outcomes `mapper` gives for all reports in one fixture file, in order."""
    outcomes = [mapper(obj) for obj in load_reports(relative)]
    return common.ReportFindings(
        [finding for outcome in outcomes for finding in outcome.findings],
        [verdict for outcome in outcomes for verdict in outcome.skipped],
        [verdict for outcome in outcomes for verdict in outcome.rejected],
        sum(outcome.duplicates for outcome in outcomes),
    )


def placed(report: dict[str, Any], namespace: str, *, name: str | None = None) -> dict[str, Any]:
    """A copy of `report` living in `namespace`: its scope and trivy workload labels follow."""
    report = copy.deepcopy(report)
    metadata = report["metadata"]
    for key in SERVER_FIELDS:
        metadata.pop(key, None)
    metadata["namespace"] = namespace
    if name:
        metadata["name"] = name
    if isinstance(report.get("scope"), dict):
        report["scope"]["namespace"] = namespace
        report["scope"].pop("uid", None)
    complete_for_crd(report)
    labels = metadata.get("labels") or {}
    if "trivy-operator.resource.namespace" in labels:
        labels["trivy-operator.resource.namespace"] = namespace
    return report


def with_results(report: dict[str, Any], result: str) -> dict[str, Any]:
    """The policy report with every result set to `result` (fix or break everything)."""
    changed = copy.deepcopy(report)
    for entry in changed["results"]:
        entry["result"] = result
    return changed


def apply(control_plane: cluster.Cluster, *documents: dict[str, Any]) -> None:
    control_plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(list(documents)))


def delete(control_plane: cluster.Cluster, report: dict[str, Any]) -> None:
    control_plane.kubectl(
        "delete",
        report["kind"].lower() + "." + report["apiVersion"].split("/")[0],
        report["metadata"]["name"],
        "-n",
        report["metadata"]["namespace"],
    )


def finding_names(report: dict[str, Any]) -> set[str]:
    """The Observation names the report's findings map to (our own mapper, unit-tested)."""
    return {finding.name for finding in dispatch.map_report(report).findings}


def observations(control_plane: cluster.Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    result = control_plane.kubectl("get", "observations", "-n", namespace, "-o", "json")
    return {item["metadata"]["name"]: item for item in orjson.loads(result.stdout)["items"]}


def phases(control_plane: cluster.Cluster, namespace: str) -> dict[str, str]:
    return {
        name: str((item.get("status") or {}).get("phase"))
        for name, item in observations(control_plane, namespace).items()
    }


def complete_for_crd(report: dict[str, Any]) -> None:
    """Docs examples omit fields the trivy-operator CRD requires; fill them on the copy."""
    body = report.get("report")
    if not report["kind"].endswith("VulnerabilityReport") or not isinstance(body, dict):
        return
    body.setdefault("updateTimestamp", "2024-01-01T00:00:00Z")
    for vulnerability in body.get("vulnerabilities") or []:
        vulnerability.setdefault("lastModifiedDate", "2024-01-01T00:00:00Z")
        vulnerability.setdefault("publishedDate", "2024-01-01T00:00:00Z")
