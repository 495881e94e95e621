"""The Grafana dashboards and the alert rules: promtool, the shipped manifests, and a real
Prometheus scraping a real zen-watcher process that serves real traffic.

Every panel query of each dashboard (the daemon's, and the findings') must parse and return
data in a scenario made for it, every metric it names must be
one zen-watcher (or prometheus_client's process collector) exposes, and the PrometheusRule
example must carry exactly the rules of manifests/prometheus/alerts.yaml.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import orjson
import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.harness import go_modules, payloads, reports
from tests.harness.admission import REFUSE_FORBIDDEN, REFUSE_INVALID, refused_alert, refusing_policy
from tests.harness.controlplane import cluster
from tests.harness.controlplane.controlplane import free_port
from tests.harness.daemon_process import DaemonProcess
from tests.harness.daemons import StartDaemon
from tests.harness.paths import REPO_ROOT
from tests.harness.payloads import unique_alert
from tests.harness.polling import wait_for
from tests.harness.prometheus_tools import prometheus_tools, promtool
from tests.harness.promql import exposed_metric_names, metric_names
from zenwatcher.informers import informer
from zenwatcher.leader import gc
from zenwatcher.mapping.reports.kinds import REPORT_KINDS
from zenwatcher.metrics import Metrics
from zenwatcher.observation import REASON_CREATED, REASON_LAST_SEEN, REASON_RESOLVED

DASHBOARD = REPO_ROOT / "manifests/grafana/zen-watcher-dashboard.json"
FINDINGS_DASHBOARD = REPO_ROOT / "manifests/grafana/zen-watcher-findings.json"
DASHBOARDS = (DASHBOARD, FINDINGS_DASHBOARD)
GRAFANA_KUSTOMIZATION = REPO_ROOT / "manifests/grafana"
ALERTS = REPO_ROOT / "manifests/prometheus/alerts.yaml"
ALERTS_TEST = REPO_ROOT / "manifests/prometheus/alerts_test.yaml"
MONITORING = REPO_ROOT / "manifests/examples/monitoring"
# The Prometheus Operator CRDs the monitoring example needs, from the Go module proxy (cached in
# the Go module cache; never committed here).
OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
OPERATOR_CRDS = ("servicemonitors", "prometheusrules")
ALERT_NAMES = {
    "ZenWatcherQueueNearFull",
    "ZenWatcherWriteErrors",
    "ZenWatcherNoLeader",
    "ZenWatcherWatchFailing",
    "ZenWatcherGCFailing",
    "ZenWatcherObservationBudgetNearlyFull",
    "ZenWatcherNewCriticalFinding",
    "ZenWatcherCriticalFindingsOpen",
}
# Grafana's variables as a query inspector would send them for the last few minutes.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1m", "job": ".+"}
# The findings dashboard's variables at "All" (namespace's allValue matches the empty value).
GRAFANA_VARIABLES |= {"source": ".+", "namespace": ".*", "severity": ".+"}
DAEMON_ENV = {
    "LEADER_LEASE_DURATION": "3",
    "LEADER_RENEW_DEADLINE": "2",
    "LEADER_RETRY_PERIOD": "0.5",
    "GC_INTERVAL": "1s",
    "DEDUP_WINDOW_SECONDS": "1",
    "SHUTDOWN_GRACE_SECONDS": "2",
}


@dataclass(frozen=True, slots=True)
class PanelQuery:
    """One query of one panel."""

    panel: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return f"{self.panel} [{self.ref_id}]: {self.expr}"


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    dashboard: dict[str, Any] = orjson.loads(path.read_bytes())
    return dashboard


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in (collapsed) rows included."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels") or [])


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    return [
        PanelQuery(panel["title"], target["refId"], target["expr"])
        for panel in all_panels(dashboard["panels"])
        for target in panel.get("targets") or []
    ]


def substituted(expr: str) -> str:
    """`expr` with Grafana's variables ($__rate_interval, ${job}, …) replaced by values."""

    def value(match: re.Match[str]) -> str:
        return GRAFANA_VARIABLES[match.group(1) or match.group(2)]

    result = re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)
    assert "$" not in result, result
    return result


def preinitialised_labels(sample_name: str, label: str) -> set[str]:
    registry = CollectorRegistry()
    Metrics(registry)
    return {
        sample.labels[label]
        for family in registry.collect()
        for sample in family.samples
        if sample.name == sample_name
    }


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


class TestAlertRules:
    """The rule file is valid, unit-tested, and the PrometheusRule example carries it."""

    def test_promtool_check_rules(self) -> None:
        """`promtool check rules` accepts alerts.yaml."""
        result = promtool("check", "rules", str(ALERTS))
        assert 0 == result.returncode, result.stdout + result.stderr

    def test_promtool_unit_tests_pass(self) -> None:
        """`promtool test rules alerts_test.yaml` passes."""
        result = promtool("test", "rules", str(ALERTS_TEST))
        assert 0 == result.returncode, result.stdout + result.stderr

    def test_every_alert_is_described_and_tested_firing(self) -> None:
        """Each alert has a severity, a summary and a description, and a firing test case."""
        rules = load_yaml(ALERTS)["groups"][0]["rules"]
        assert ["zen-watcher"] == [group["name"] for group in load_yaml(ALERTS)["groups"]]
        assert ALERT_NAMES == {rule["alert"] for rule in rules}
        for rule in rules:
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        firing = {
            case["alertname"]
            for test in load_yaml(ALERTS_TEST)["tests"]
            for case in test["alert_rule_test"]
            if case.get("exp_alerts")
        }
        assert ALERT_NAMES == firing

    def test_prometheus_rule_example_has_exactly_the_alert_rules(self) -> None:
        """The PrometheusRule's spec.groups equal alerts.yaml's groups."""
        rule = load_yaml(MONITORING / "prometheusrule.yaml")
        assert ("monitoring.coreos.com/v1", "PrometheusRule") == (rule["apiVersion"], rule["kind"])
        assert load_yaml(ALERTS)["groups"] == rule["spec"]["groups"]

    def test_service_monitor_selects_the_metrics_service(self) -> None:
        """The ServiceMonitor's selector and port match the shipped metrics Service."""
        monitor = load_yaml(MONITORING / "servicemonitor.yaml")
        services = yaml.safe_load_all((REPO_ROOT / "manifests/base/services.yaml").read_text())
        service = next(s for s in services if s["metadata"]["name"] == "zen-watcher-metrics")
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        assert "metrics" == selector["app.kubernetes.io/component"]
        assert [service["metadata"]["namespace"]] == monitor["spec"]["namespaceSelector"][
            "matchNames"
        ]
        ports = {port["name"] for port in service["spec"]["ports"]}
        assert {"metrics"} == {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
        assert "metrics" in ports


class TestDashboardJson:
    """The dashboard JSON is well-formed and names only metrics zen-watcher exposes."""

    @pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
    def test_uses_a_datasource_variable_and_no_fixed_uid(self, path: Path) -> None:
        """Schema ~39, a Prometheus `datasource` variable, every panel and target uses it."""
        dashboard = load_dashboard(path)
        assert 39 <= dashboard["schemaVersion"]
        variables = {var["name"]: var for var in dashboard["templating"]["list"]}
        assert ("datasource", "prometheus") == (
            variables["datasource"]["type"],
            variables["datasource"]["query"],
        )
        panels = list(all_panels(dashboard["panels"]))
        assert len(panels) == len({panel["id"] for panel in panels})
        for panel in panels:
            sources = [panel.get("datasource")] + [
                t["datasource"] for t in panel.get("targets", [])
            ]
            for source in filter(None, sources):
                assert {"type": "prometheus", "uid": "${datasource}"} == source, panel["title"]

    @pytest.mark.parametrize(
        ("path", "at_least"), [(DASHBOARD, 30), (FINDINGS_DASHBOARD, 12)], ids=["main", "findings"]
    )
    def test_every_expression_names_only_exposed_metrics(self, path: Path, at_least: int) -> None:
        """Each expr selects at least one metric, and only names from Metrics, process_* or up."""
        exposed = exposed_metric_names()
        queries = panel_queries(load_dashboard(path))
        assert len(queries) >= at_least
        for query in queries:
            names = metric_names(query.expr)
            assert names, str(query)
            assert set() == names - exposed, str(query)

    def test_metric_name_parser(self) -> None:
        """The name parser skips functions, keywords, labels, strings and ranges."""
        expr = (
            'sum by (le) (rate(a_bucket{job=~"x|y", le!="b"}[5m])) / on (job) group_left '
            "max without (pod) (b_total offset 5m) > bool 0.5 or histogram_quantile(0.9, c)"
        )
        assert {"a_bucket", "b_total", "c"} == metric_names(expr)

    def test_preinitialised_labels_are_those_the_code_uses(self) -> None:
        """Metrics creates the label values the GC, informers and elector really use."""
        resources = {"configmaps"} | {kind.plural for kind in REPORT_KINDS}
        expected = {
            ("zen_watcher_gc_runs_total", "outcome"): {"ok", "error"},
            ("zen_watcher_gc_deleted_total", "reason"): {
                REASON_LAST_SEEN,
                REASON_CREATED,
                REASON_RESOLVED,
            },
            ("zen_watcher_gc_errors_total", "reason"): {
                gc.ERROR_BAD_TIMESTAMP,
                gc.ERROR_LIST,
                gc.ERROR_DELETE,
            },
            ("zen_watcher_leader_transitions_total", "direction"): {"acquired", "lost"},
            ("zen_watcher_filter_reloads_total", "outcome"): {"applied", "invalid"},
            ("zen_watcher_watch_restarts_total", "reason"): set(get_args(informer.RestartReason)),
            ("zen_watcher_watch_restarts_total", "resource"): resources,
            ("zen_watcher_relists_total", "reason"): set(get_args(informer.RelistReason)),
            ("zen_watcher_relists_total", "resource"): resources,
        }
        for (name, label), values in expected.items():
            assert values == preinitialised_labels(name, label), name

    @pytest.mark.apiserver
    def test_grafana_kustomization_makes_the_labelled_configmaps(
        self, control_plane: cluster.Cluster
    ) -> None:
        """manifests/grafana renders one ConfigMap per dashboard in zen-system, labelled for
        the sidecar, holding the JSON file, and the API server accepts them (dry run)."""
        rendered = control_plane.kubectl("kustomize", str(GRAFANA_KUSTOMIZATION)).stdout
        configmaps = {cm["metadata"]["name"]: cm for cm in yaml.safe_load_all(rendered)}
        expected = {
            "zen-watcher-dashboard": DASHBOARD,
            "zen-watcher-findings-dashboard": FINDINGS_DASHBOARD,
        }
        assert set(expected) == set(configmaps)
        for name, path in expected.items():
            configmap = configmaps[name]
            assert ("ConfigMap", "zen-system") == (
                configmap["kind"],
                configmap["metadata"]["namespace"],
            )
            assert "1" == configmap["metadata"]["labels"]["grafana_dashboard"]
            assert path.read_text() == configmap["data"][path.name]
        applied = control_plane.kubectl(
            "apply", "-k", str(GRAFANA_KUSTOMIZATION), "--dry-run=server", check=False
        )
        assert 0 == applied.returncode, applied.stderr


def operator_crds(workdir: Path) -> list[Path]:
    """The ServiceMonitor and PrometheusRule CRD files of the pinned prometheus-operator module."""
    folder = go_modules.module_dir(OPERATOR_MODULE, workdir) / "example/prometheus-operator-crd"
    return [folder / f"monitoring.coreos.com_{name}.yaml" for name in OPERATOR_CRDS]


class TestMonitoringExample:
    """The ServiceMonitor and PrometheusRule pass the operator CRDs' server-side validation."""

    @pytest.mark.apiserver
    def test_applies_with_server_side_validation(
        self, control_plane: cluster.Cluster, tmp_path: Path
    ) -> None:
        """`kubectl apply -k examples/monitoring --dry-run=server` succeeds once the CRDs exist."""
        for crd in operator_crds(tmp_path):
            control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        names = [f"crd/{name}.monitoring.coreos.com" for name in OPERATOR_CRDS]
        control_plane.kubectl("wait", "--for=condition=Established", *names, "--timeout=60s")
        result = control_plane.kubectl(
            "apply", "-k", str(MONITORING), "--dry-run=server", "--server-side", check=False
        )
        assert 0 == result.returncode, result.stderr


class PrometheusServer:
    """`prometheus` on a free loopback port, scraping one target every second."""

    def __init__(self, *, workdir: Path, target: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.log_path = workdir / "prometheus.log"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": "zen-watcher",
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(prometheus_tools().prometheus),
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._ready, timeout=30)

    def _ready(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, f"prometheus exited:\n{self.logs()}"
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                return 200 == int(response.status)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def api(self, path: str, **params: str) -> dict[str, Any]:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            answer: dict[str, Any] = orjson.loads(response.read())
        return answer

    def query(self, expr: str) -> dict[str, Any]:
        """/api/v1/query at now; a 400 (bad expression) comes back as its error document."""
        try:
            return self.api("/api/v1/query", query=expr)
        except urllib.error.HTTPError as error:
            answer: dict[str, Any] = orjson.loads(error.read())
            return answer

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


@contextlib.contextmanager
def running_prometheus(workdir: Path, target: str) -> Iterator[PrometheusServer]:
    server = PrometheusServer(workdir=workdir, target=target)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def drive_traffic(daemon: DaemonProcess, namespace: str) -> None:
    """Webhook traffic over real sockets: repeats, unique alerts, an audit EventList, Falco's
    internal event, malformed input, refused writes and requests answered 4xx."""
    statuses = [
        daemon.post("/falco/webhook", orjson.dumps(refused_alert(90, namespace, REFUSE_FORBIDDEN)))[
            0
        ],
        daemon.post("/falco/webhook", orjson.dumps(refused_alert(91, namespace, REFUSE_INVALID)))[
            0
        ],
    ]
    repeated = orjson.dumps(unique_alert(0, namespace))
    statuses += [daemon.post("/falco/webhook", repeated)[0] for _ in range(5)]
    statuses += [
        daemon.post("/falco/webhook", orjson.dumps(unique_alert(index, namespace)))[0]
        for index in range(1, 11)
    ]
    internal = dict(payloads.falco_alerts())["internal-metrics-snapshot.json"]
    statuses.append(daemon.post("/falco/webhook", orjson.dumps(internal))[0])
    events = payloads.audit_events(include_malformed=True)
    statuses.append(daemon.post("/audit/webhook", payloads.event_list(events))[0])
    assert {200} == set(statuses)
    bad = [
        daemon.post("/falco/webhook", b"{not json")[0],
        daemon.post("/falco/webhook", b"{}")[0],
        daemon.post("/audit/webhook", b'"not an event list"')[0],
        daemon.post("/falco/webhook", repeated, token=None)[0],
        daemon.post("/falco/webhook", b"", method="GET")[0],
    ]
    assert all(400 <= status < 500 for status in bad), bad
    time.sleep(1.5)  # past the 1 s dedup window, so the repeats are flushed as an update
    assert 200 == daemon.post("/falco/webhook", repeated)[0]


def daemon_has_every_outcome(daemon: DaemonProcess) -> bool:
    """Writes failed and retried, a repeat flushed, a report reconciled, GC swept."""
    wanted = [
        daemon.metric_sum("zen_watcher_events_total", bucket="failed"),
        daemon.metric_sum("zen_watcher_api_retries_total"),
        daemon.metric_sum("zen_watcher_observations_updated_total"),
        daemon.metric_sum("zen_watcher_events_rejected_total"),
        daemon.metric_sum("zen_watcher_report_reconciles_total"),
        daemon.metric_sum("zen_watcher_gc_runs_total", outcome="ok"),
        daemon.metric_sum("zen_watcher_informers_synced"),
    ]
    return all(value > 0 for value in wanted)


def empty_queries(server: PrometheusServer, queries: list[PanelQuery]) -> list[str]:
    """The queries that failed or returned no series, each with Prometheus' answer."""
    problems = []
    for query in queries:
        answer = server.query(substituted(query.expr))
        if "success" != answer.get("status") or not answer["data"]["result"]:
            problems.append(f"{query}\n    -> {answer}")
    return problems


def settled_queries(
    server: PrometheusServer, queries: list[PanelQuery], *, timeout: float
) -> list[str]:
    """Poll until every query returns data (rates need two scrapes); the problems left."""
    deadline = time.monotonic() + timeout
    while (problems := empty_queries(server, queries)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return problems


class TestAgainstPrometheus:
    """A real Prometheus scrapes a real daemon serving real traffic."""

    @pytest.mark.daemon
    @pytest.mark.apiserver
    def test_every_panel_query_returns_data(
        self,
        start_daemon: StartDaemon,
        control_plane: cluster.Cluster,
        namespace: str,
        tmp_path: Path,
    ) -> None:
        """Every panel target's expr parses and returns series, and the alert rules load."""
        queries = panel_queries(load_dashboard())
        report = reports.placed(
            reports.load_fixture("kyverno/policyreport-pod-pass-fail.yaml"), namespace
        )
        reports.apply(control_plane, report)
        with refusing_policy(control_plane, namespace):
            daemon = start_daemon(WATCH_NAMESPACE=namespace, **DAEMON_ENV)
            target = f"127.0.0.1:{daemon.metrics_port}"
            with running_prometheus(tmp_path, target) as server:
                try:
                    drive_traffic(daemon, namespace)
                    wait_for(lambda: daemon_has_every_outcome(daemon), timeout=30)
                    problems = settled_queries(server, queries, timeout=20)
                except AssertionError:
                    print(f"--- prometheus ---\n{server.logs()}")
                    print(f"--- zen-watcher ---\n{daemon.logs()}")
                    raise
                assert [] == problems
                rules = server.api("/api/v1/rules")["data"]["groups"][0]["rules"]
                assert ALERT_NAMES == {rule["name"] for rule in rules}
                assert {"ok"} == {rule["health"] for rule in rules}, rules

    @pytest.mark.daemon
    @pytest.mark.apiserver
    def test_every_findings_panel_query_returns_data(
        self,
        start_daemon: StartDaemon,
        control_plane: cluster.Cluster,
        namespace: str,
        tmp_path: Path,
    ) -> None:
        """The findings dashboard: critical Falco alerts in three namespaces, policy reports
        in two, one report fixed (its findings resolved) and broken again (reopened); every
        panel target returns series, and the findings alert rules evaluate."""
        queries = panel_queries(load_dashboard(FINDINGS_DASHBOARD))
        others = [f"{namespace}-b", f"{namespace}-c"]
        for other in others:
            control_plane.kubectl("create", "namespace", other)
        try:
            namespaces = [namespace, *others]
            daemon = start_daemon(
                WATCH_NAMESPACE=",".join(namespaces),
                FINDINGS_METRICS="detailed",
                REPORT_RESOLVE_GRACE_SECONDS="1",
                **DAEMON_ENV,
            )
            target = f"127.0.0.1:{daemon.metrics_port}"
            with running_prometheus(tmp_path, target) as server:
                try:
                    wait_for(lambda: server.query("up")["data"]["result"], timeout=20)
                    run_findings_scenario(daemon, control_plane, namespaces)
                    problems = settled_queries(server, queries, timeout=30)
                except AssertionError:
                    print(f"--- prometheus ---\n{server.logs()}")
                    print(f"--- zen-watcher ---\n{daemon.logs()}")
                    raise
                assert [] == problems
                rules = server.api("/api/v1/rules")["data"]["groups"][0]["rules"]
                assert {"ok"} == {rule["health"] for rule in rules}, rules
        finally:
            for other in others:
                control_plane.kubectl("delete", "namespace", other, "--wait=false", check=False)


def run_findings_scenario(
    daemon: DaemonProcess, control_plane: cluster.Cluster, namespaces: list[str]
) -> None:
    """Findings opened, resolved and reopened, in several namespaces, while Prometheus scrapes."""
    fixture = reports.load_fixture("kyverno/policyreport-pod-pass-fail.yaml")
    first, second = (reports.placed(fixture, ns) for ns in namespaces[:2])
    reports.apply(control_plane, first, second)
    for index, namespace in enumerate(namespaces):
        alert = {**unique_alert(index, namespace), "priority": "Critical"}
        assert 200 == daemon.post("/falco/webhook", orjson.dumps(alert))[0]

    def open_findings(**labels: str) -> float:
        return daemon.metric_sum("zen_watcher_findings", phase="open", **labels)

    wait_for(lambda: open_findings(severity="critical") >= 3 and open_findings() >= 5, timeout=30)
    reports.delete(control_plane, first)  # fixed: its findings turn Resolved
    histogram = "zen_watcher_finding_time_to_resolve_seconds_count"
    wait_for(lambda: daemon.metric_sum(histogram) >= 1, timeout=30)
    reports.apply(control_plane, first)  # broken again: reopened
    wait_for(lambda: daemon.metric_sum("zen_watcher_findings_reopened_total") >= 1, timeout=30)
