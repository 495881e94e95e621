"""Every metric moves: one scenario touches every family and every documented label value.

Two daemons run in this process (tests/harness/in_process.py) against the real API server, on
real loopback sockets. The scenario sends webhooks (accepted, repeated, filtered, rejected, every
4xx the edge answers, 503 with a full queue), reconciles reports (open, resolve, reopen, a
report our mapper fails on), loses and regains the Lease, relists after a 410 (etcd compacted),
collects garbage, reloads the filter (valid, invalid) and fails writes in every bucket. The
list of what must move is derived from the code and docs/design.md §8
(tests/harness/metric_movement.py), so a new metric that never moves fails here.

Faults that no quick real scenario provokes are injected through the daemon's client, each
marked `INJECTED` below. Two settings are shortened rather than faked: watches end every few
seconds (the daemon's 5-10 min server timeout), and a write is retried for 3 s (300 s shipped).
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.harness import metric_movement, reports
from tests.harness.admission import REFUSE_INVALID, refused_alert, refusing_policy
from tests.harness.controlplane import cluster
from tests.harness.daemon_process import TOKEN
from tests.harness.in_process import InProcessDaemon, fault_clients
from tests.harness.payloads import audit_events, falco_alerts, unique_alert
from tests.harness.polling import wait_for
from zenwatcher.finding import Finding
from zenwatcher.kube import config as kube_config
from zenwatcher.kube import errors, observations
from zenwatcher.kube.client import KubeClient, Params
from zenwatcher.leader import gc
from zenwatcher.mapping import falco
from zenwatcher.mapping.reports import dispatch
from zenwatcher.observation import (
    LABEL_ORIGIN,
    REASON_CREATED,
    REASON_LAST_SEEN,
    REASON_RESOLVED,
    rfc3339,
    to_observation,
)
from zenwatcher.pipeline import assembly
from zenwatcher.pipeline.writer import Writer

QUEUE_SIZE = 40
GC_PAGE_SIZE = 7  # distinctive: the injected list failure picks GC's list by it
# Markers in a Falco alert's output: the write of its Observation meets an injected fault.
MARK_TRANSPORT = "zen-fault-transport"
MARK_INTERNAL = "zen-fault-internal"
MARK_MISSING = "zen-fault-missing"
MARK_CONFLICT = "zen-fault-conflict"
MARK_HOLD = "zen-fault-hold"
# A report with this name makes the (real) mapper raise: INJECTED, as our mappers have no
# known bug to provoke.
BROKEN_REPORT = "zen-broken-report"
MALFORMED_REPORT = "zen-malformed-report"
REASONS = (REASON_LAST_SEEN, REASON_CREATED, REASON_RESOLVED)
WRITE_RETRY_SECONDS = 3.0  # the shipped 300 s would make the transport failure last minutes


def env(namespace: str, **extra: str) -> dict[str, str]:
    return {
        "POD_NAMESPACE": namespace,
        "POD_NAME": f"zen-watcher-{extra.get('LEADER_ELECTION_ID', 'a')}-{time.monotonic_ns()}",
        "WATCH_NAMESPACE": namespace,
        "WATCH_CLUSTER_REPORTS": "true",
        "LEADER_LEASE_DURATION": "3",
        "LEADER_RENEW_DEADLINE": "2",
        "LEADER_RETRY_PERIOD": "0.5",
        "GC_INTERVAL": "1s",
        "GC_PAGE_SIZE": str(GC_PAGE_SIZE),
        "DEDUP_WINDOW_SECONDS": "1",
        "REPORT_RESOLVE_GRACE_SECONDS": "0.5",
        "SHUTDOWN_GRACE_SECONDS": "2",
        "SHUTDOWN_DELAY_SECONDS": "0",
        "QUEUE_SIZE": str(QUEUE_SIZE),
        "LOG_LEVEL": "warning",
        **extra,
    }


async def until(condition: Callable[[], bool]) -> None:
    """Wait (on the daemon's loop) until `condition()`, set by the test thread, holds."""
    while True:
        if condition():
            return
        await asyncio.sleep(0.05)


class Scenario:
    """The faults daemon A's client injects, switched on and off by the test thread."""

    def __init__(self, daemon: InProcessDaemon, namespace: str) -> None:
        self.daemon = daemon
        self.namespace = namespace
        self.lease_down = False
        self.hold_writes = threading.Event()  # set: creates of MARK_HOLD alerts wait
        self.hold_report_create = False
        self.report_create_held = threading.Event()
        self.fail_gc_list = False
        self.fail_delete: str | None = None
        self.corrupt_last_seen: str | None = None
        self.backdate: str | None = None
        self.idle_watch = False
        self.broken_watch = False
        daemon.faults.on_request = self.on_request
        daemon.faults.after = self.after
        daemon.faults.on_watch = self.on_watch

    def leading(self) -> bool:
        metrics = self.daemon.faults.metrics
        assert metrics is not None
        return 1.0 == metrics.registry.get_sample_value("zen_watcher_leader")

    async def on_request(self, method: str, path: str, params: Params | None, body: Any) -> None:
        if "/leases" in path and self.lease_down:
            raise errors.TransportError("INJECTED: the Lease API is unreachable")
        if path.endswith("/observations") and method == "GET":
            self.gc_list_fault(params)
        elif method == "DELETE" and self.fail_delete and path.endswith("/" + self.fail_delete):
            self.fail_delete = None
            raise errors.error_for(422, {"reason": "Invalid"})  # INJECTED: an odd object
        elif method == "POST" and path.endswith("/observations") and isinstance(body, dict):
            await self.create_fault(body)

    def gc_list_fault(self, params: Params | None) -> None:
        if self.fail_gc_list and params and str(params.get("limit")) == str(GC_PAGE_SIZE):
            self.fail_gc_list = False
            raise errors.error_for(503, {"reason": "ServiceUnavailable"})  # INJECTED

    async def create_fault(self, body: dict[str, Any]) -> None:
        message = str((body.get("spec") or {}).get("message", ""))
        if MARK_TRANSPORT in message:
            raise errors.TransportError("INJECTED: connection reset")
        if MARK_INTERNAL in message:
            raise RuntimeError("INJECTED: a bug in the write path")
        if MARK_MISSING in message:
            raise errors.error_for(404, {"reason": "NotFound"})  # INJECTED: namespace gone
        if MARK_CONFLICT in message:
            raise errors.error_for(409, {"reason": "Conflict"})  # INJECTED: not AlreadyExists
        if MARK_HOLD in message:
            await until(lambda: not self.hold_writes.is_set())
        labels = (body.get("metadata") or {}).get("labels") or {}
        if self.hold_report_create and LABEL_ORIGIN in labels:
            # INJECTED: a report write in flight when its term ends (the Lease is lost).
            self.hold_report_create = False
            self.report_create_held.set()
            await until(lambda: not self.leading())
            raise errors.error_for(503, {"reason": "ServiceUnavailable"})

    async def after(self, method: str, path: str, answer: dict[str, Any]) -> None:
        await self.corrupt_report(method, path, answer)
        # INJECTED: the CRD validates lastSeen as date-time, so only a corrupted answer (or an
        # object stored before that validation) carries one GC cannot read.
        if method == "GET" and path.endswith("/observations") and self.corrupt_last_seen:
            for item in answer.get("items") or []:
                if item["metadata"]["name"] == self.corrupt_last_seen:
                    item.setdefault("status", {})["lastSeen"] = "yesterday"
                    self.corrupt_last_seen = None
        # INJECTED: an Observation without status (its status write never happened) expires a
        # TTL after its creation, and the CRD's shortest TTL is a minute: read it as older.
        if method == "GET" and path.endswith("/observations") and self.backdate:
            for item in answer.get("items") or []:
                if item["metadata"]["name"] == self.backdate:
                    item.pop("status", None)
                    item["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
                    self.backdate = None

    async def corrupt_report(self, method: str, path: str, answer: dict[str, Any]) -> None:
        # INJECTED: the upstream CRDs type report.checks as an array; older trivy-operator
        # CRDs that preserve unknown fields do not, so such a report is real, but not here.
        if method == "GET" and path.endswith("/configauditreports"):
            for item in answer.get("items") or []:
                if item["metadata"]["name"] == MALFORMED_REPORT:
                    item["report"]["checks"] = "not a list"

    async def on_watch(
        self, path: str, server_timeout: int, inactivity: float
    ) -> tuple[int, float]:
        if self.broken_watch and "configmaps" in path:
            self.broken_watch = False
            raise errors.TransportError("INJECTED: watch connection refused")
        if self.idle_watch and "configmaps" in path:
            # A quiet watch with a short inactivity limit: the `timeout` restart.
            self.idle_watch = False
            return 60, 0.5
        # Watches end every few seconds (the shipped 5-10 min would not end within the test).
        return 3, inactivity


def post(
    url: str,
    body: bytes,
    *,
    token: str | None = TOKEN,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> int:
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=body if method == "POST" else None, headers=sent, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def slow_body(port: int, path: str) -> threading.Thread:
    """A request whose large body never arrives: answered 408 after the body time limit."""

    def send() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
            connection.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {2 * 1024 * 1024}\r\n\r\n[".encode()
            )
            connection.recv(65536)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.fixture(name="recorder")
def _recorder() -> metric_movement.MovementRecorder:
    return metric_movement.MovementRecorder()


class Sampler:
    """Samples every running daemon's /metrics every 0.1 s (gauges move and fall back)."""

    def __init__(self, recorder: metric_movement.MovementRecorder) -> None:
        self.recorder = recorder
        self.urls: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()

    def sample(self) -> None:
        for url in list(self.urls):
            try:
                self.recorder.sample_url(url)
            except OSError:
                continue

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(name="broken_mapper")
def _broken_mapper(monkeypatch: pytest.MonkeyPatch) -> None:
    real = dispatch.map_report

    def map_report(report: dict[str, Any]) -> Any:
        if (report.get("metadata") or {}).get("name") == BROKEN_REPORT:
            raise RuntimeError("INJECTED: a mapper bug")
        return real(report)

    monkeypatch.setattr(dispatch, "map_report", map_report)
    monkeypatch.setattr(
        assembly, "Writer", functools.partial(Writer, retry_for=WRITE_RETRY_SECONDS)
    )


def metric(daemon: InProcessDaemon, name: str, **labels: str) -> float:
    metrics = daemon.faults.metrics
    assert metrics is not None
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def over_budget(open_door: InProcessDaemon, narrow: InProcessDaemon, namespace: str) -> None:
    """New findings the etcd budget has no room for: the instance's (open_door) and one
    namespace's (narrow), each counted once the daemon has counted its scope."""
    for daemon, alert_namespace, token, reason in (
        (open_door, "zen-elsewhere", None, "instance"),
        (narrow, namespace, TOKEN, "namespace"),
    ):
        for index in range(3):  # the first may arrive before the daemon's first count
            alert = unique_alert(900 + index, alert_namespace)
            assert 200 == post(daemon.url + "/falco/webhook", orjson.dumps(alert), token=token)
            time.sleep(0.5)
        wait_for(
            lambda daemon=daemon, reason=reason: (
                metric(daemon, "zen_watcher_events_total", bucket="over_budget", reason=reason) > 0
            ),
            timeout=30,
        )


def webhook_traffic(daemon: InProcessDaemon, namespace: str) -> None:
    """Accepted, repeated, filtered, rejected and refused requests (4xx)."""
    falco, audit = daemon.url + "/falco/webhook", daemon.url + "/audit/webhook"
    repeated = orjson.dumps(unique_alert(0, namespace))
    for _ in range(4):
        assert 200 == post(falco, repeated)
    for index in range(1, 4):
        assert 200 == post(falco, orjson.dumps(unique_alert(index, namespace)))
    other = unique_alert(50, namespace)
    other["output_fields"]["k8s.ns.name"] = "somewhere-else"  # out of WATCH_NAMESPACE
    assert 200 == post(falco, orjson.dumps(other))
    internal = dict(falco_alerts())["internal-metrics-snapshot.json"]
    no_rule = {k: v for k, v in unique_alert(51, namespace).items() if k != "rule"}
    bad_field = {**unique_alert(52, namespace), "tags": "not-a-list"}
    assert 200 == post(falco, orjson.dumps([internal, no_rule, bad_field, 3]))
    events = audit_events(include_malformed=True)
    first = next(event for event in events if event.get("kind") == "Event")
    early = {**first, "stage": "RequestReceived", "auditID": "zen-early"}
    harmless = {**first, "verb": "get", "auditID": "zen-harmless"}
    harmless["user"] = {"username": "alice", "groups": ["system:authenticated"]}
    harmless["objectRef"] = {"resource": "pods", "namespace": namespace, "name": "p"}
    events += [early, harmless]
    # Besides the fixtures: not an object, not an Event, an Event without its fields.
    items: list[Any] = [*events, 5, {"kind": "Pod"}, {"kind": "Event"}]
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}
    assert 200 == post(audit, orjson.dumps(body))
    refused = [
        post(falco, b"{not json"),
        post(audit, b'"not an event list"'),
        post(falco, repeated, token=None),
        post(falco, b"", method="GET"),
        post(falco, repeated, headers={"Content-Encoding": "gzip"}),
        post(falco, orjson.dumps([unique_alert(60 + i, namespace) for i in range(QUEUE_SIZE + 1)])),
        post(falco, repeated, headers={"X-Forwarded-For": "10.9.9.9"}),
    ]
    assert [400, 400, 401, 405, 415, 413, 403] == refused
    time.sleep(2.5)  # past the dedup window: the absorbed repeats are flushed
    assert 200 == post(falco, repeated)  # a create that meets 409: a repeat


def failing_writes(daemon: InProcessDaemon, namespace: str) -> None:
    falco = daemon.url + "/falco/webhook"
    alerts = [refused_alert(70, namespace, REFUSE_INVALID)]
    for index, mark in enumerate((MARK_TRANSPORT, MARK_INTERNAL, MARK_MISSING, MARK_CONFLICT)):
        alerts.append(refused_alert(71 + index, namespace, mark))
    assert 200 == post(falco, orjson.dumps(alerts))
    wanted = ("http_422", "transport", "internal", "namespace_missing", "conflict")
    wait_for(
        lambda: all(
            metric(daemon, "zen_watcher_events_total", source="falco", bucket="failed", reason=r)
            for r in wanted
        ),
        timeout=30,
    )


def full_queue(daemon: InProcessDaemon, scenario: Scenario, namespace: str) -> None:
    """Writes held (INJECTED) until the queue is full: 503 with Retry-After."""
    falco = daemon.url + "/falco/webhook"
    scenario.hold_writes.set()
    statuses = [
        post(falco, orjson.dumps(refused_alert(100 + index, namespace, MARK_HOLD)))
        for index in range(QUEUE_SIZE + 10)
    ]
    scenario.hold_writes.clear()
    assert 503 in statuses, statuses


def odd_reports(namespace: str) -> list[dict[str, Any]]:
    """Reports the CRDs accept but our mappers reject entries of (a result without a verdict,
    a check without an ID), and one whose list answer is corrupted (`MALFORMED_REPORT`)."""
    policy = reports.placed(
        reports.load_fixture("kyverno/policyreport-pod-pass-fail.yaml"), namespace, name="odd-1"
    )
    policy["results"] = [{"policy": "no-verdict", "rule": "r"}]
    audit = reports.placed(
        reports.load_fixture("trivy/configauditreport-docs-nginx.yaml"), namespace, name="odd-2"
    )
    audit["report"]["checks"] = [{"checkID": "", "severity": "LOW", "success": False}]
    malformed = reports.placed(
        reports.load_fixture("trivy/configauditreport-docs-nginx.yaml"),
        namespace,
        name=MALFORMED_REPORT,
    )
    return [policy, audit, malformed]


def set_filter(control_plane: cluster.Cluster, namespace: str, text: str) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "zen-watcher-filter", "namespace": namespace},
        "data": {"filter.json": text},
    }
    reports.apply(control_plane, manifest)


def filter_reloads(daemon: InProcessDaemon, control_plane: cluster.Cluster, namespace: str) -> None:
    set_filter(control_plane, namespace, '{"sources": {"falco": {"minSeverity": "CRITICAL"}}}')
    wait_for(lambda: metric(daemon, "zen_watcher_filter_reloads_total", outcome="applied") >= 2)
    body = orjson.dumps(unique_alert(200, namespace))
    falco = daemon.url + "/falco/webhook"
    wait_for(
        lambda: (
            post(falco, body) == 200
            and metric(daemon, "zen_watcher_events_total", bucket="filtered", reason="min_severity")
        )
    )
    set_filter(control_plane, namespace, '{"sources": {"falco": ')
    wait_for(lambda: metric(daemon, "zen_watcher_filter_reloads_total", outcome="invalid") >= 1)
    set_filter(control_plane, namespace, "{}")


def report_life(daemon: InProcessDaemon, control_plane: cluster.Cluster, namespace: str) -> None:
    """Open, resolve, reopen; a report the mapper fails on."""
    fail = reports.placed(
        reports.load_fixture("kyverno/policyreport-deployment-warn.yaml"), namespace, name="pf"
    )
    reports.apply(control_plane, fail)
    wait_for(lambda: metric(daemon, "zen_watcher_observations_created_total", source="kyverno"))
    reports.delete(control_plane, fail)
    wait_for(
        lambda: metric(
            daemon, "zen_watcher_observations_updated_total", source="kyverno", reason="resolved"
        ),
        timeout=30,
    )
    reports.apply(control_plane, fail)
    wait_for(
        lambda: metric(
            daemon, "zen_watcher_events_total", source="kyverno", bucket="updated", reason="reopen"
        ),
        timeout=30,
    )
    broken = reports.placed(
        reports.load_fixture("kyverno/policyreport-pod-pass-fail.yaml"),
        namespace,
        name=BROKEN_REPORT,
    )
    reports.apply(control_plane, broken)
    wait_for(
        lambda: metric(
            daemon,
            "zen_watcher_events_total",
            bucket="rejected",
            reason="internal_error",
            source="kyverno",
        ),
        timeout=30,
    )


async def write_as_admin(
    control_plane: cluster.Cluster, body: dict[str, Any], status: dict[str, Any] | None
) -> None:
    connection = await kube_config.load_connection(str(control_plane.kubeconfig("admin")))
    client = KubeClient(connection=connection, timeout=10.0)
    try:
        await observations.create_observation(client, body)
        if status is not None:
            metadata = body["metadata"]
            await observations.patch_status(
                client, metadata["namespace"], metadata["name"], status=status
            )
    finally:
        await client.close()


def waited_for(
    daemon: InProcessDaemon, wanted: list[tuple[str, str]], *, label: str, timeout: float
) -> None:
    """Wait until each (family, value of `label`) has counted; fail naming those that did not."""

    def missing() -> list[tuple[str, str]]:
        return [
            (name, value) for name, value in wanted if not metric(daemon, name, **{label: value})
        ]

    try:
        wait_for(lambda: not missing(), timeout=timeout)
    except AssertionError as error:
        raise AssertionError(f"never counted: {missing()}") from error


def admin_finding(namespace: str, index: int) -> Finding:
    return falco.map_falco_alert(unique_alert(300 + index, namespace))


def admin_observation(
    control_plane: cluster.Cluster,
    namespace: str,
    index: int,
    *,
    last_seen: datetime | None,
    ttl: int = 3600,
    resolved_at: datetime | None = None,
) -> str:
    """An Observation written as admin (for GC): last seen at `last_seen`, or without status."""
    finding = admin_finding(namespace, index)
    body = to_observation(
        finding, namespace=namespace, now=last_seen or datetime.now(UTC), ttl_seconds=ttl
    )
    status = body.pop("status", None)
    if resolved_at is not None:
        body["metadata"].setdefault("labels", {})[LABEL_ORIGIN] = f"gc-test-{index}"
    if last_seen is not None and status is not None and resolved_at is not None:
        status |= {"phase": "Resolved", "resolvedAt": rfc3339(resolved_at)}
    asyncio.run(write_as_admin(control_plane, body, status if last_seen else None))
    return finding.name


def garbage(
    daemon: InProcessDaemon, scenario: Scenario, control_plane: cluster.Cluster, namespace: str
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    # Named before they exist: GC sweeps every second.
    scenario.backdate = admin_finding(namespace, 2).name
    scenario.fail_delete = admin_finding(namespace, 4).name
    scenario.corrupt_last_seen = admin_finding(namespace, 5).name
    admin_observation(control_plane, namespace, 1, last_seen=long_ago)
    admin_observation(control_plane, namespace, 2, last_seen=None)
    admin_observation(control_plane, namespace, 3, last_seen=long_ago, resolved_at=long_ago)
    admin_observation(control_plane, namespace, 4, last_seen=long_ago)
    admin_observation(control_plane, namespace, 5, last_seen=datetime.now(UTC))
    scenario.fail_gc_list = True
    wanted = [("zen_watcher_gc_deleted_total", reason) for reason in REASONS]
    wanted += [("zen_watcher_gc_errors_total", reason) for reason in gc.ERRORS]
    waited_for(daemon, wanted, label="reason", timeout=30)


def lose_the_lease(
    daemon: InProcessDaemon, scenario: Scenario, control_plane: cluster.Cluster, namespace: str
) -> None:
    """A report write in flight when the Lease is lost (INJECTED), then leadership back."""
    scenario.hold_report_create = True
    report = reports.placed(
        reports.load_fixture("kyverno/wg-sample-cis-k8s.yaml"), namespace, name="lost"
    )
    reports.apply(control_plane, report)
    assert scenario.report_create_held.wait(30)
    scenario.lease_down = True
    wait_for(lambda: metric(daemon, "zen_watcher_leader_transitions_total", direction="lost"))
    scenario.lease_down = False
    wait_for(
        lambda: metric(daemon, "zen_watcher_leader_transitions_total", direction="acquired") >= 2,
        timeout=30,
    )
    wait_for(
        lambda: metric(
            daemon, "zen_watcher_events_total", bucket="failed", reason="leadership_lost"
        ),
        timeout=30,
    )


def relist_after_compaction(
    daemon: InProcessDaemon, scenario: Scenario, control_plane: cluster.Cluster, namespace: str
) -> None:
    """etcd compacted past every informer's resourceVersion, the API server restarted: 410."""
    plane = control_plane.require_local()
    scenario.idle_watch = True
    wait_for(
        lambda: metric(
            daemon, "zen_watcher_watch_restarts_total", resource="configmaps", reason="timeout"
        ),
        timeout=30,
    )
    scenario.broken_watch = True
    wait_for(
        lambda: metric(
            daemon, "zen_watcher_watch_restarts_total", resource="configmaps", reason="error"
        ),
        timeout=30,
    )
    control_plane.kubectl("create", "configmap", "zen-compaction-marker", "-n", namespace)
    plane.compact_etcd()
    plane.restart_apiserver()
    wait_for(
        lambda: metric(daemon, "zen_watcher_relists_total", resource="configmaps", reason="gone"),
        timeout=60,
    )


@pytest.mark.apiserver
def test_every_metric_moves(
    control_plane: cluster.Cluster,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    recorder: metric_movement.MovementRecorder,
    broken_mapper: None,
) -> None:
    """Every family, pre-seeded label value, bucket and documented value moved at least once."""
    control_plane.grant_watcher_role(namespace)
    kubeconfig = str(control_plane.kubeconfig("zen-watcher"))
    for index, fixture in enumerate(
        (
            "kyverno/policyreport-pod-pass-fail.yaml",
            "kyverno/policyreport-skip-exception-admission.yaml",
            "trivy/configauditreport-docs-nginx.yaml",
        )
    ):
        report = reports.placed(reports.load_fixture(fixture), namespace, name=f"start-{index}")
        reports.apply(control_plane, report)
    reports.apply(control_plane, *odd_reports(namespace))
    leader = InProcessDaemon(
        env(
            namespace,
            KUBECONFIG=kubeconfig,
            WEBHOOK_AUTH_TOKEN=TOKEN,
            WEBHOOK_ALLOWED_CIDRS="127.0.0.1/32",
            WEBHOOK_TRUSTED_PROXIES="127.0.0.1/32",
        )
    )
    # The unauthenticated gauge needs a daemon without token; it watches no reports.
    # The unauthenticated gauge needs a daemon without token; it watches no reports. Its scope
    # (zen-elsewhere and the test's namespace) holds more than its instance budget of 1.
    open_door = InProcessDaemon(
        env(
            namespace,
            KUBECONFIG=kubeconfig,
            WEBHOOK_ALLOW_UNAUTHENTICATED="true",
            WATCH_REPORTS="false",
            LEADER_ELECTION_ID="zen-watcher-open",
            WATCH_NAMESPACE="zen-elsewhere",
            GC_INTERVAL="3600",
            OBSERVATION_BUDGET="1",
        )
    )
    # A namespace budget of 1 in the test's namespace, which the leader fills.
    narrow = InProcessDaemon(
        env(
            namespace,
            KUBECONFIG=kubeconfig,
            WEBHOOK_AUTH_TOKEN=TOKEN,
            WATCH_REPORTS="false",
            LEADER_ELECTION_ID="zen-watcher-narrow",
            GC_INTERVAL="3600",
            OBSERVATION_BUDGET="0",
            OBSERVATION_BUDGET_PER_NAMESPACE="1",
        )
    )
    daemons = [leader, open_door, narrow]
    with (
        refusing_policy(control_plane, namespace),
        fault_clients(monkeypatch, daemons),
        Sampler(recorder) as sampler,
    ):
        scenario = Scenario(leader, namespace)
        try:
            leader.start()
            sampler.urls.append(leader.metrics_url)
            open_door.start()
            sampler.urls.append(open_door.metrics_url)
            narrow.start()
            sampler.urls.append(narrow.metrics_url)
            slow = slow_body(leader.webhook_port, "/falco/webhook")
            webhook_traffic(leader, namespace)
            failing_writes(leader, namespace)
            full_queue(leader, scenario, namespace)
            filter_reloads(leader, control_plane, namespace)
            report_life(leader, control_plane, namespace)
            garbage(leader, scenario, control_plane, namespace)
            lose_the_lease(leader, scenario, control_plane, namespace)
            relist_after_compaction(leader, scenario, control_plane, namespace)
            over_budget(open_door, narrow, namespace)
            slow.join(40)
            sampler.sample()
        finally:
            for daemon in daemons:
                daemon.stop()
        sampler.sample()
    problems = recorder.unmoved(metric_movement.every_expectation(), metric_movement.family_names())
    assert [] == problems, "\n".join(problems)
