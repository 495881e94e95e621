"""The KEDA example (manifests/examples/keda): KEDA's own CRD validates it on the real API server,
and its Prometheus query is valid PromQL over metrics zen-watcher exposes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import go_modules
from tests.harness.controlplane import cluster
from tests.harness.paths import REPO_ROOT
from tests.harness.prometheus_tools import promtool
from tests.harness.promql import exposed_metric_names, metric_names

KEDA = REPO_ROOT / "manifests/examples/keda"
# KEDA's CRDs, from the Go module proxy as the monitoring example's are (cached in the Go module
# cache; never committed here). v2.17.2 is the newest release the build's Go can fetch.
KEDA_MODULE = "github.com/kedacore/keda/v2@v2.17.2"


def keda_crd(workdir: Path) -> Path:
    """The ScaledObject CRD file of the pinned KEDA module."""
    crds = go_modules.module_dir(KEDA_MODULE, workdir) / "config/crd/bases"
    return crds / "keda.sh_scaledobjects.yaml"


def scaled_object() -> dict[str, Any]:
    document = yaml.safe_load((KEDA / "scaledobject.yaml").read_text())
    assert ("keda.sh/v1alpha1", "ScaledObject") == (document["apiVersion"], document["kind"])
    return dict(document)


class TestKedaExample:
    @pytest.mark.apiserver
    def test_applies_with_server_side_validation(
        self, control_plane: cluster.Cluster, tmp_path: Path
    ) -> None:
        """`kubectl apply -k examples/keda --dry-run=server` succeeds once KEDA's CRD exists, and
        the same dry run refuses a ScaledObject the CRD's schema does not allow (so the schema,
        not just the kind, was checked)."""
        control_plane.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", str(keda_crd(tmp_path))
        )
        control_plane.kubectl(
            "wait", "--for=condition=Established", "crd/scaledobjects.keda.sh", "--timeout=60s"
        )
        result = control_plane.kubectl(
            "apply", "-k", str(KEDA), "--dry-run=server", "--server-side", check=False
        )
        assert 0 == result.returncode, result.stderr
        assert "scaledobject.keda.sh/zen-watcher serverside-applied" in result.stdout

        broken = copy.deepcopy(scaled_object())
        del broken["spec"]["triggers"]  # required by the schema
        path = tmp_path / "broken.yaml"
        path.write_text(yaml.safe_dump(broken))
        refused = control_plane.kubectl(
            "apply", "-f", str(path), "--dry-run=server", "--server-side", check=False
        )
        assert 0 != refused.returncode
        assert "spec.triggers: Required value" in refused.stderr

    def test_scales_the_webhook_deployment_on_its_request_rate(
        self, control_plane: cluster.Cluster, tmp_path: Path
    ) -> None:
        """The target is a Deployment the kustomization ships, in the ScaledObject's namespace,
        and the trigger's query is valid PromQL (promtool) naming only the webhook request
        counter zen-watcher exposes."""
        output = control_plane.kubectl("kustomize", str(KEDA)).stdout
        documents = [document for document in yaml.safe_load_all(output) if document]
        deployments = {
            (doc["metadata"]["namespace"], doc["metadata"]["name"])
            for doc in documents
            if doc["kind"] == "Deployment"
        }
        scaled = scaled_object()
        target = scaled["spec"]["scaleTargetRef"]
        assert "Deployment" == target["kind"]
        assert (scaled["metadata"]["namespace"], target["name"]) in deployments

        trigger = scaled["spec"]["triggers"][0]
        assert "prometheus" == trigger["type"]
        query = trigger["metadata"]["query"]
        assert {"zen_watcher_webhook_requests_total"} == metric_names(query)
        assert metric_names(query) <= exposed_metric_names()
        rules = tmp_path / "keda-query.yaml"
        rules.write_text(
            yaml.safe_dump(
                {"groups": [{"name": "keda", "rules": [{"record": "x", "expr": query}]}]}
            )
        )
        checked = promtool("check", "rules", str(rules))
        assert 0 == checked.returncode, checked.stdout + checked.stderr
