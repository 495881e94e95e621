"""Falco and audit webhooks end to end: real daemon process, real sockets, real kube-apiserver."""

from __future__ import annotations

import concurrent.futures
import copy
from typing import Any

import orjson
import pytest

from tests.harness import payloads
from tests.harness.controlplane import cluster
from tests.harness.daemons import StartDaemon, list_observations
from tests.harness.payloads import unique_alert
from tests.harness.polling import wait_for
from zenwatcher.finding import Finding
from zenwatcher.mapping import audit, falco
from zenwatcher.mapping.rejection import Ignored
from zenwatcher.observation import observation_namespace


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["metadata"]["name"]: item for item in items}


def expected_findings(alerts: list[dict[str, Any]]) -> list[Finding]:
    findings = []
    for alert in alerts:
        try:
            findings.append(falco.map_falco_alert(alert))
        except Ignored:
            continue
    return findings


class TestFalco:
    def test_every_fixture_becomes_its_observation(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """Each Falco fixture posted once → its Observation, in its namespace, with its fields."""
        daemon = start_daemon()
        alerts = [alert for _, alert in payloads.falco_alerts()]
        for fixture_namespace in ("openfaas-fn", "hello-app"):
            control_plane.kubectl("create", "namespace", fixture_namespace, check=False)
        for alert in alerts:
            status, _, answer = daemon.post("/falco/webhook", orjson.dumps(alert))
            assert 200 == status, answer
        findings = expected_findings(alerts)
        assert 6 == len(findings)  # the seventh fixture is Falco's internal metrics event

        for finding in findings:
            target = observation_namespace(finding, default_namespace=namespace)

            def stored(finding: Finding = finding, target: str = target) -> dict[str, Any] | None:
                return by_name(list_observations(control_plane, target)).get(finding.name)

            observation = wait_for(stored)
            assert finding.severity.value == observation["spec"]["severity"]
            assert "runtime_detection" == observation["spec"]["eventType"]
            assert finding.details["rule"] == observation["spec"]["details"]["rule"]
            assert 1 == observation["status"]["count"]

    def test_internal_event_is_filtered_not_rejected(self, start_daemon: StartDaemon) -> None:
        """Falco's own metrics event: 200, counted as filtered (reason internal)."""
        daemon = start_daemon()
        alert = dict(payloads.falco_alerts())["internal-metrics-snapshot.json"]
        status, _, answer = daemon.post("/falco/webhook", orjson.dumps(alert))
        assert (200, 1, 0) == (status, answer["filtered"], answer["accepted"])
        assert 1 == daemon.metric_sum(
            "zen_watcher_events_total", bucket="filtered", reason="internal"
        )

    def test_fifty_repeats_are_one_observation_counting_fifty(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """The same alert 50 times → one Observation whose status.count is 50 after the flush."""
        daemon = start_daemon(DEDUP_WINDOW_SECONDS="1")
        alert = unique_alert(0, namespace)
        answers = [daemon.post("/falco/webhook", orjson.dumps(alert))[2] for _ in range(50)]
        assert 1 == sum(int(answer["accepted"]) for answer in answers)
        assert 49 == sum(int(answer["deduplicated"]) for answer in answers)

        name = falco.map_falco_alert(alert).name
        wait_for(
            lambda: (
                by_name(list_observations(control_plane, namespace))
                .get(name, {})
                .get("status", {})
                .get("count")
                == 50
            )
        )
        assert [name] == [
            item["metadata"]["name"] for item in list_observations(control_plane, namespace)
        ]
        # At most about one write per window: one create and a few flushes, not fifty writes.
        assert daemon.metric_sum("zen_watcher_api_writes_total", operation="patch_status") <= 4


class TestAudit:
    def test_event_list_becomes_observations(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """An EventList of every audit fixture → one Observation per distinct finding."""
        daemon = start_daemon()
        events = payloads.audit_events()
        status, _, answer = daemon.post("/audit/webhook", payloads.event_list(events))
        assert 200 == status, answer
        assert len(events) == sum(
            int(answer[key]) for key in ("accepted", "deduplicated", "filtered", "rejected")
        )

        expected: dict[str, Finding] = {}
        for event in events:
            try:
                finding = audit.map_audit_event(event)
            except Ignored:
                continue
            expected[finding.name] = finding
        assert {"pod_exec", "privileged_pod", "cluster_admin_binding", "secret_write"} <= {
            finding.event_type for finding in expected.values()
        }
        for finding in expected.values():
            target = observation_namespace(finding, default_namespace=namespace)
            observation = wait_for(
                lambda f=finding, t=target: by_name(list_observations(control_plane, t)).get(f.name)
            )
            assert finding.event_type == observation["spec"]["eventType"]
            assert finding.severity.value == observation["spec"]["severity"]
            assert "audit" == observation["spec"]["source"]


class TestTwoReplicas:
    def test_same_finding_on_two_daemons_is_one_observation(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """Two processes each receive the same alert → one Observation counting both."""
        first, second = start_daemon(), start_daemon()
        alert = orjson.dumps(unique_alert(7, namespace))
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            statuses = list(pool.map(lambda d: d.post("/falco/webhook", alert)[0], [first, second]))
        assert [200, 200] == statuses
        wait_for(
            lambda: (
                [
                    o.get("status", {}).get("count")
                    for o in list_observations(control_plane, namespace)
                ]
                == [2]
            )
        )


class TestBadInput:
    @pytest.mark.parametrize(
        ("token", "expected"), [(None, 401), ("wrong", 401), ("test-webhook-token", 200)]
    )
    def test_bearer_token(
        self, start_daemon: StartDaemon, namespace: str, token: str | None, expected: int
    ) -> None:
        """Missing or wrong token: 401 and nothing processed; the right one: 200."""
        daemon = start_daemon()
        status, headers, _ = daemon.post(
            "/falco/webhook", orjson.dumps(unique_alert(1, namespace)), token=token
        )
        assert expected == status
        if expected == 401:
            assert "Bearer" == headers.get("WWW-Authenticate")
            assert 0 == daemon.metric_sum("zen_watcher_events_received_total", source="falco")

    def test_answers_for_bad_requests(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """GET 405, invalid JSON 400, non-object JSON 400, oversize body 413 — each a JSON reason."""
        daemon = start_daemon(WEBHOOK_MAX_BODY_BYTES="2048")
        cases = [
            (daemon.post("/falco/webhook", b"", method="GET"), 405),
            (daemon.post("/falco/webhook", b"{not json"), 400),
            (daemon.post("/audit/webhook", b"42"), 400),
            (daemon.post("/falco/webhook", b'"a string"'), 400),
            (daemon.post("/audit/webhook", b'{"kind": 0}'), 400),
            (daemon.post("/falco/webhook", b'{"rule": ' + b'"x' * 3000 + b'"}'), 413),
        ]
        for (status, _, answer), expected in cases:
            assert expected == status
            assert answer.get("error"), answer
        assert [] == list_observations(control_plane, namespace)

    def test_queue_full_is_503_with_retry_after_and_flat_memory(
        self, start_daemon: StartDaemon, namespace: str
    ) -> None:
        """With a tiny queue and a slow writer, overflow gets 503 + Retry-After; memory stays flat."""
        daemon = start_daemon(QUEUE_SIZE="5", API_QPS="0.2", API_BURST="1", WRITER_WORKERS="1")
        statuses = []
        for index in range(20):
            status, headers, _ = daemon.post(
                "/falco/webhook", orjson.dumps(unique_alert(index, namespace))
            )
            statuses.append(status)
            if status == 503:
                assert "1" == headers.get("Retry-After")
        assert 503 in statuses
        before = daemon.rss_bytes()
        body = orjson.dumps([unique_alert(1000 + index, namespace) for index in range(5)])
        for _ in range(300):
            assert 503 == daemon.post("/falco/webhook", body)[0]
        growth = daemon.rss_bytes() - before
        assert growth < 8 * 1024 * 1024, f"RSS grew {growth} bytes over 300 refused batches"
        # More events than the queue can ever hold: 413, not a 503 to retry forever.
        too_many = orjson.dumps([unique_alert(2000 + index, namespace) for index in range(6)])
        status, _, answer = daemon.post("/falco/webhook", too_many)
        assert 413 == status
        assert "the write queue holds 5" in answer["error"]


class TestWebhookTier:
    def test_without_reports_the_leader_runs_gc_only(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """WATCH_REPORTS=false: ready, writes what it is sent, leads its own Lease, and its
        term starts no report informers."""
        daemon = start_daemon(WATCH_REPORTS="false", LEADER_ELECTION_ID="zen-webhooks")
        alert = unique_alert(1, namespace)
        assert 200 == daemon.post("/falco/webhook", orjson.dumps(alert))[0]
        name = falco.map_falco_alert(alert).name
        wait_for(lambda: name in by_name(list_observations(control_plane, namespace)))
        assert 200 == daemon.probe("/readyz")
        holder = control_plane.kubectl(
            "get", "lease", "zen-webhooks", "-n", namespace, "-o", "jsonpath={.spec.holderIdentity}"
        ).stdout
        assert daemon.env["POD_NAME"] == holder
        started = [e for e in daemon.log_events() if e.get("event") == "leader_work_started"]
        assert [False] == [event["reports"] for event in started]
        assert not any(e.get("event") == "report_observations_loaded" for e in daemon.log_events())


class TestAccounting:
    def test_received_equals_sum_of_buckets(
        self, start_daemon: StartDaemon, namespace: str
    ) -> None:
        """Every event that arrived is in exactly one bucket, per source."""
        daemon = start_daemon()
        events = payloads.audit_events(include_malformed=True)
        daemon.post("/audit/webhook", orjson.dumps(events))
        alerts = [alert for _, alert in payloads.falco_alerts()] + [unique_alert(3, namespace)] * 3
        for alert in alerts:
            daemon.post("/falco/webhook", orjson.dumps(alert))
        broken = copy.deepcopy(unique_alert(4, namespace))
        del broken["rule"]
        daemon.post("/falco/webhook", orjson.dumps([broken, unique_alert(5, namespace)]))

        def balanced() -> bool:
            for source in ("falco", "audit"):
                received = daemon.metric_sum("zen_watcher_events_received_total", source=source)
                buckets = daemon.metric_sum("zen_watcher_events_total", source=source)
                if received == 0 or received != buckets:
                    return False
            return True

        wait_for(balanced)
        assert len(alerts) + 2 == daemon.metric_sum(
            "zen_watcher_events_received_total", source="falco"
        )
        assert 1 == daemon.metric_sum("zen_watcher_events_total", source="falco", bucket="rejected")
