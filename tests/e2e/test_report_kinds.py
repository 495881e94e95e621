"""Every report kind we watch, through its upstream CRD, an informer and the writer.

One daemon serves the whole module (a daemon per kind would cost a start and a leader election
each): it watches the module's reports namespace and the cluster-scoped kinds, and lives in a
namespace of its own (POD_NAMESPACE), where cluster reports' findings go. For each kind: the
upstream CRD is applied, one sample object of that kind is created → its Observations Open;
one finding removed from it → that Observation Resolved, the others untouched; put back →
reopened, its count raised.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tests.e2e.report_kinds import crd_file, sample_report, without_one_finding
from tests.harness import reports as fx
from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess
from tests.harness.polling import wait_for
from zenwatcher.mapping.reports.kinds import REPORT_KINDS, ReportKind
from zenwatcher.observation import LABEL_ORIGIN

RUN_LABEL = "zen-test-run"


@dataclass(frozen=True, slots=True)
class Scene:
    """The module's daemon and the namespaces it works with."""

    control_plane: cluster.Cluster
    daemon: DaemonProcess
    pod_namespace: str  # the daemon's own: cluster reports' findings land here
    reports_namespace: str  # the one namespace it watches
    run: str  # labels every report made here, for cleaning up cluster-scoped ones

    def home_of(self, kind: ReportKind) -> str:
        """Where the findings of a `kind` sample go: the samples name no other namespace."""
        return self.reports_namespace if kind.namespaced else self.pod_namespace


@pytest.fixture(name="scene", scope="module")
def _scene(
    control_plane: cluster.Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    run = uuid.uuid4().hex[:10]
    pod_namespace, reports_namespace = f"t-{run}", f"t-{run}-reports"
    for name in (pod_namespace, reports_namespace):
        control_plane.kubectl("create", "namespace", name)
    control_plane.grant_watcher_role(pod_namespace)
    daemon = DaemonProcess(
        kubeconfig=control_plane.kubeconfig("zen-watcher"),
        workdir=tmp_path_factory.mktemp("report-kinds"),
        env={
            "POD_NAMESPACE": pod_namespace,
            "WATCH_NAMESPACE": reports_namespace,
            # Off by default once WATCH_NAMESPACE is set; this daemon is the one shard.
            "WATCH_CLUSTER_REPORTS": "true",
            "REPORT_RESOLVE_GRACE_SECONDS": "1",
        },
    )
    try:
        daemon.start()
        yield Scene(control_plane, daemon, pod_namespace, reports_namespace, run)
    finally:
        daemon.stop()
        plurals = ",".join(f"{kind.plural}.{kind.group}" for kind in REPORT_KINDS)
        control_plane.kubectl(
            "delete", plurals, "-A", "-l", f"{RUN_LABEL}={run}", "--wait=false", check=False
        )
        for name in (pod_namespace, reports_namespace):
            control_plane.kubectl(
                "delete",
                "observations.zen.kube-zen.io",
                "--all",
                "-n",
                name,
                "--wait=false",
                check=False,
            )
            control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def install_crd(control_plane: cluster.Cluster, kind: ReportKind) -> None:
    """Apply the kind's upstream CRD; it must be served as we watch it."""
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", crd_file(kind))
    crd = f"crd/{kind.plural}.{kind.group}"
    control_plane.kubectl("wait", "--for=condition=Established", crd, "--timeout=30s")
    spec = orjson.loads(control_plane.kubectl("get", crd, "-o", "json").stdout)["spec"]
    assert ("Namespaced" if kind.namespaced else "Cluster") == spec["scope"]
    assert kind.kind == spec["names"]["kind"]
    served = {version["name"] for version in spec["versions"] if version["served"]}
    assert kind.version in served


def stored(scene: Scene, kind: ReportKind, names: set[str]) -> dict[str, dict[str, Any]]:
    """The Observations among `names`, where the kind's findings go."""
    everything = fx.observations(scene.control_plane, scene.home_of(kind))
    return {name: item for name, item in everything.items() if name in names}


def phases(scene: Scene, kind: ReportKind, names: set[str]) -> dict[str, str]:
    return {
        name: str((item.get("status") or {}).get("phase"))
        for name, item in stored(scene, kind, names).items()
    }


def wait_phases(scene: Scene, kind: ReportKind, expected: dict[str, str]) -> None:
    """Wait until the Observations of `expected` have those phases; on timeout show them."""
    try:
        wait_for(lambda: phases(scene, kind, set(expected)) == expected)
    except AssertionError:
        assert phases(scene, kind, set(expected)) == expected
        raise


@pytest.mark.parametrize("kind", REPORT_KINDS, ids=lambda kind: kind.kind)
def test_open_resolve_reopen(scene: Scene, kind: ReportKind) -> None:
    """1. The kind's upstream CRD is applied; one sample object of it is created.
    2. One finding is removed from the object.
    3. It is put back.
    Result: its findings Open (cluster kinds' in POD_NAMESPACE); then the removed one Resolved
    with resolvedAt and the others not rewritten; then that one Open again with count 2.
    """
    plane = scene.control_plane
    install_crd(plane, kind)
    report = sample_report(
        kind,
        namespace=scene.reports_namespace,
        name=f"sample-{kind.plural}-{scene.run}",
        labels={RUN_LABEL: scene.run},
    )
    names = fx.finding_names(report)
    gone, reduced = without_one_finding(report)
    try:
        fx.apply(plane, report)
        wait_phases(scene, kind, dict.fromkeys(names, "Open"))
        opened = stored(scene, kind, names)
        assert {1} == {item["status"]["count"] for item in opened.values()}
        assert all(LABEL_ORIGIN in item["metadata"]["labels"] for item in opened.values())

        fx.apply(plane, reduced)
        expected = dict.fromkeys(names, "Open") | {gone: "Resolved"}
        wait_phases(scene, kind, expected)
        after = stored(scene, kind, names)
        assert after[gone]["status"].get("resolvedAt")
        untouched = {name: item["metadata"]["resourceVersion"] for name, item in opened.items()}
        assert {name: untouched[name] for name in names - {gone}} == {
            name: after[name]["metadata"]["resourceVersion"] for name in names - {gone}
        }

        fx.apply(plane, report)
        wait_phases(scene, kind, dict.fromkeys(names, "Open"))
        reopened = stored(scene, kind, names)[gone]["status"]
        assert 2 == reopened["count"]
        assert reopened.get("resolvedAt") is None
    except AssertionError:
        print(f"--- zen-watcher log {scene.daemon.log_path} ---\n{scene.daemon.logs()}")
        raise
