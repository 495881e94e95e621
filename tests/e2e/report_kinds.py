"""One sample object of every report kind we watch, from the shared upstream fixtures.

Where the fixtures hold no object of a kind (the cluster-scoped trivy kinds, openreports
ClusterReport), the sample is built from its namespaced sibling: the same entries, the kind
changed, no namespace, and for trivy a cluster-scoped subject in the `trivy-operator.resource.*`
labels. Each such kind names the sibling it is built from in `SAMPLES`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml

from tests.harness import reports as fx
from tests.harness.paths import SHARED_FIXTURES
from zenwatcher.mapping.reports import trivy
from zenwatcher.mapping.reports.kinds import TRIVY_GROUP, ReportKind

CRDS = SHARED_FIXTURES / "crds"


@dataclass(frozen=True, slots=True)
class Sample:
    """Where a kind's sample comes from."""

    fixture: str  # under the shared fixtures
    document: int = 0  # which YAML document of the file
    # For a kind built from a namespaced sibling: the cluster-scoped object its findings are
    # about (trivy kinds), or ("", "") for a policy report, which names no subject in labels.
    built_subject: tuple[str, str] | None = None


SAMPLES: dict[str, Sample] = {
    "PolicyReport": Sample("kyverno/wg-sample-cis-k8s.yaml"),
    # A Kyverno conformance assertion: no metadata.name, which `sample_report` supplies.
    "ClusterPolicyReport": Sample("kyverno/clusterpolicyreport-namespaces-fail-pass.yaml"),
    "Report": Sample("kyverno/openreports-sample-cis-k8s.yaml"),
    # No upstream ClusterReport: built from the openreports Report sample.
    "ClusterReport": Sample("kyverno/openreports-sample-cis-k8s.yaml", built_subject=("", "")),
    "VulnerabilityReport": Sample("trivy/vulnerabilityreport-docs-nginx.yaml"),
    # No upstream cluster-scoped trivy samples: each is built from its namespaced sibling, about
    # the kind of object trivy-operator writes it for.
    "ClusterVulnerabilityReport": Sample(
        "trivy/vulnerabilityreport-docs-nginx.yaml", built_subject=("Node", "worker-1")
    ),
    "ConfigAuditReport": Sample("trivy/configauditreport-docs-nginx.yaml"),
    "ClusterConfigAuditReport": Sample(
        "trivy/configauditreport-docs-nginx.yaml",
        built_subject=("CustomResourceDefinition", "widgets.example.com"),
    ),
    "ExposedSecretReport": Sample("trivy/exposedsecretreport-docs.yaml"),
    "RbacAssessmentReport": Sample("trivy/rbacassessmentreport-docs.yaml"),
    "ClusterRbacAssessmentReport": Sample(
        "trivy/rbacassessmentreport-docs.yaml", built_subject=("ClusterRole", "wide-open")
    ),
    "InfraAssessmentReport": Sample("trivy/api-server-infraassessmentreport-expected.yaml"),
    "ClusterInfraAssessmentReport": Sample(
        "trivy/api-server-infraassessmentreport-expected.yaml",
        built_subject=("Node", "control-plane-1"),
    ),
}

# Where each tool keeps the entries that become findings.
_TRIVY_ENTRIES = ("vulnerabilities", "checks", "secrets")


def crd_file(kind: ReportKind) -> str:
    """The upstream CRD file of `kind` in the shared fixtures."""
    path = CRDS / f"{kind.group}_{kind.plural}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no upstream CRD for {kind.kind} at {path.name}")
    return str(path)


def sample_report(
    kind: ReportKind, *, namespace: str, name: str, labels: dict[str, str]
) -> dict[str, Any]:
    """An object of `kind` named `name` (in `namespace` when namespaced), carrying `labels`."""
    sample = SAMPLES[kind.kind]
    documents = list(yaml.safe_load_all((SHARED_FIXTURES / sample.fixture).read_text()))
    report: dict[str, Any] = documents[sample.document]
    if sample.built_subject is not None:
        report = _cluster_sibling(report, kind, sample.built_subject)
    if report["kind"] != kind.kind:
        raise ValueError(f"{sample.fixture} holds a {report['kind']}, not a {kind.kind}")
    if kind.namespaced:
        report = fx.placed(report, namespace, name=name)
    else:
        report = copy.deepcopy(report)
        metadata = report.setdefault("metadata", {})
        for key in (*fx.SERVER_FIELDS, "namespace"):
            metadata.pop(key, None)
        metadata["name"] = name
        fx.complete_for_crd(report)
    report["metadata"]["labels"] = {**(report["metadata"].get("labels") or {}), **labels}
    return report


def _cluster_sibling(
    report: dict[str, Any], kind: ReportKind, subject: tuple[str, str]
) -> dict[str, Any]:
    """`report` as the cluster-scoped `kind`: same entries, no namespace; trivy's labels name
    the cluster-scoped `subject` (kind, name)."""
    report = copy.deepcopy(report)
    report["kind"] = kind.kind
    metadata = report["metadata"]
    metadata.pop("namespace", None)
    metadata.pop("ownerReferences", None)
    if kind.group == TRIVY_GROUP:
        labels = metadata.setdefault("labels", {})
        for key in (trivy.LABEL_NAMESPACE, trivy.LABEL_CONTAINER):
            labels.pop(key, None)
        labels[trivy.LABEL_KIND], labels[trivy.LABEL_NAME] = subject
        (metadata.get("annotations") or {}).pop(trivy.LABEL_NAME, None)
    return report


def entries(report: dict[str, Any]) -> list[Any]:
    """The report's list of entries that become findings (results, vulnerabilities, ...)."""
    if "results" in report:
        holder, key = report, "results"
    else:
        holder = report["report"]
        key = next(key for key in _TRIVY_ENTRIES if key in holder)
    found: list[Any] = holder[key]
    return found


def with_entries(report: dict[str, Any], kept: list[Any]) -> dict[str, Any]:
    """A copy of `report` whose entries are `kept`."""
    changed = copy.deepcopy(report)
    target = entries(changed)
    target[:] = copy.deepcopy(kept)
    return changed


def without_one_finding(report: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, report without it): the report with every entry that maps to one finding removed,
    that finding being one no entry maps to together with another."""
    every = entries(report)
    per_entry = [fx.finding_names(with_entries(report, [entry])) for entry in every]
    alone = sorted({next(iter(names)) for names in per_entry if len(names) == 1})
    if not alone:
        raise ValueError(f"{report['kind']}: no finding comes from entries of its own")
    gone = alone[0]
    kept = [entry for entry, names in zip(every, per_entry, strict=True) if gone not in names]
    reduced = with_entries(report, kept)
    if fx.finding_names(reduced) != fx.finding_names(report) - {gone}:
        raise AssertionError(f"{report['kind']}: removing {gone} changed other findings")
    return gone, reduced
