"""The report controller end to end: real daemon, real informers, real kube-apiserver."""

from __future__ import annotations

import signal
import time
from typing import Any

import orjson

from tests.harness import reports as fx
from tests.harness.controlplane import cluster
from tests.harness.daemons import StartDaemon
from tests.harness.payloads import unique_alert
from tests.harness.polling import wait_for


def report_daemon(start_daemon: StartDaemon, namespace: str, **env: str) -> Any:
    settings = {"WATCH_NAMESPACE": namespace, "REPORT_RESOLVE_GRACE_SECONDS": "1", **env}
    return start_daemon(**settings)


def freeze_while_reports_change(
    daemon: Any, control_plane: cluster.Cluster, namespace: str, *, extra_freeze: float = 0.0
) -> dict[str, str]:
    """Vulnerabilities become Observations; the daemon is frozen (SIGSTOP) while their report
    is deleted, a PolicyReport created, etcd compacted and kube-apiserver restarted (and
    `extra_freeze` seconds more); it resumes (SIGCONT). Waits for, and answers, the end state:
    the vulnerabilities Resolved, the policy finding Open."""
    plane = control_plane.require_local()
    vulns = fx.placed(fx.load_fixture(fx.VULNS), namespace)
    policy = fx.placed(fx.load_fixture(fx.POLICY), namespace)
    fx.apply(control_plane, vulns)
    wait_for(lambda: set(fx.phases(control_plane, namespace)) == fx.finding_names(vulns))
    daemon.signal(signal.SIGSTOP)
    try:
        fx.delete(control_plane, vulns)
        fx.apply(control_plane, policy)
        plane.compact_etcd()
        plane.restart_apiserver()
        time.sleep(extra_freeze)
    finally:
        daemon.signal(signal.SIGCONT)
    expected = dict.fromkeys(fx.finding_names(vulns), "Resolved") | dict.fromkeys(
        fx.finding_names(policy), "Open"
    )
    wait_for(lambda: fx.phases(control_plane, namespace) == expected, timeout=90)
    return expected


class TestLifecycle:
    def test_open_resolve_reopen(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """1. A PolicyReport (one fail) and a VulnerabilityReport (two CVEs) appear.
        2. The failing result is fixed, then the VulnerabilityReport is deleted.
        3. The result fails again.
        Result: three Open Observations; then those findings Resolved with resolvedAt; the
        policy one reopened with its count raised.
        """
        report_daemon(start_daemon, namespace)
        policy = fx.placed(fx.load_fixture(fx.POLICY), namespace)
        vulns = fx.placed(fx.load_fixture(fx.VULNS), namespace)
        fx.apply(control_plane, policy, vulns)
        policy_names, vuln_names = fx.finding_names(policy), fx.finding_names(vulns)
        assert (1, 2) == (len(policy_names), len(vuln_names))
        wait_for(
            lambda: (
                fx.phases(control_plane, namespace)
                == dict.fromkeys(policy_names | vuln_names, "Open")
            )
        )

        fx.apply(control_plane, fx.with_results(policy, "pass"))
        fx.delete(control_plane, vulns)
        resolved = dict.fromkeys(policy_names | vuln_names, "Resolved")
        wait_for(lambda: fx.phases(control_plane, namespace) == resolved)
        stored = fx.observations(control_plane, namespace)
        assert all(item["status"].get("resolvedAt") for item in stored.values())

        fx.apply(control_plane, policy)
        (name,) = policy_names
        wait_for(lambda: fx.phases(control_plane, namespace)[name] == "Open")
        reopened = fx.observations(control_plane, namespace)[name]["status"]
        assert 2 == reopened["count"]
        assert reopened.get("resolvedAt") is None

    def test_report_recreated_within_grace_does_not_flap(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """trivy deletes and recreates a report: its Observations are never Resolved."""
        daemon = report_daemon(start_daemon, namespace, REPORT_RESOLVE_GRACE_SECONDS="5")
        vulns = fx.placed(fx.load_fixture(fx.VULNS), namespace)
        fx.apply(control_plane, vulns)
        names = fx.finding_names(vulns)
        wait_for(lambda: fx.phases(control_plane, namespace) == dict.fromkeys(names, "Open"))
        versions = {
            n: o["metadata"]["resourceVersion"]
            for n, o in fx.observations(control_plane, namespace).items()
        }
        fx.delete(control_plane, vulns)
        fx.apply(control_plane, vulns)
        wait_for(
            lambda: (
                daemon.metric_sum("zen_watcher_events_total", source="trivy", bucket="deduplicated")
                >= 2
            )
        )
        wait_for(lambda: daemon.metric_sum("zen_watcher_report_reconciles_total") >= 2)
        time.sleep(6)  # past the grace period
        after = {
            n: o["metadata"]["resourceVersion"]
            for n, o in fx.observations(control_plane, namespace).items()
        }
        assert versions == after


class TestRestart:
    def test_restart_writes_nothing_for_unchanged_and_catches_up(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """1. Reports are reconciled; the daemon stops (SIGTERM).
        2. While it is down, the policy result is fixed and a second policy report appears.
        3. A new daemon starts.
        Result: the unchanged vulnerability Observations are not written (same
        resourceVersion, no create); the fixed one is Resolved; the new one is created; no
        duplicates.
        """
        first = report_daemon(start_daemon, namespace)
        policy = fx.placed(fx.load_fixture(fx.POLICY), namespace)
        vulns = fx.placed(fx.load_fixture(fx.VULNS), namespace)
        fx.apply(control_plane, policy, vulns)
        vuln_names, policy_names = fx.finding_names(vulns), fx.finding_names(policy)
        wait_for(
            lambda: (
                fx.phases(control_plane, namespace)
                == dict.fromkeys(policy_names | vuln_names, "Open")
            )
        )
        versions = {
            n: o["metadata"]["resourceVersion"]
            for n, o in fx.observations(control_plane, namespace).items()
        }
        first.signal(signal.SIGTERM)
        assert 0 == first.wait(timeout=30)

        fx.apply(control_plane, fx.with_results(policy, "pass"))
        second_policy = fx.placed(fx.load_fixture(fx.POLICY), namespace, name="second")
        second_policy["scope"]["name"] = "another-pod"
        fx.apply(control_plane, second_policy)
        new_names = fx.finding_names(second_policy)
        assert not new_names & policy_names

        second = report_daemon(start_daemon, namespace)
        expected = (
            dict.fromkeys(vuln_names, "Open")
            | dict.fromkeys(policy_names, "Resolved")
            | dict.fromkeys(new_names, "Open")
        )
        wait_for(lambda: fx.phases(control_plane, namespace) == expected)
        after = fx.observations(control_plane, namespace)
        assert {n: versions[n] for n in vuln_names} == {
            n: after[n]["metadata"]["resourceVersion"] for n in vuln_names
        }
        assert 1 == second.metric_sum(
            "zen_watcher_api_writes_total", operation="create", outcome="ok"
        )

    def test_relist_after_410_misses_nothing(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """1. The daemon watches; it is frozen (SIGSTOP).
        2. A report is deleted, another created; etcd is compacted and kube-apiserver restarted.
        3. The daemon resumes (SIGCONT) and re-watches from its old resourceVersion: 410 Gone.
        Result: it relists; the deleted report's findings are Resolved, the new ones Open,
        each Observation exists once.
        """
        # A Lease that outlasts the freeze (compaction and a restart take 10-20 s): the same term
        # resumes its watches, which is the 410 path under test. A freeze past the renew
        # deadline ends the term instead, and the next one lists afresh (tested elsewhere).
        daemon = report_daemon(
            start_daemon,
            namespace,
            LEADER_LEASE_DURATION="90",
            LEADER_RENEW_DEADLINE="60",
            LEADER_RETRY_PERIOD="2",
        )
        expected = freeze_while_reports_change(daemon, control_plane, namespace)
        # The relist completes once the restarted server has its storage ready again.
        wait_for(lambda: daemon.metric_sum("zen_watcher_relists_total", reason="gone") >= 1)
        assert 0 == daemon.metric_sum("zen_watcher_leader_transitions_total", direction="lost")
        assert fx.phases(control_plane, namespace) == expected

    def test_term_lost_in_a_freeze_catches_up(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """1. The daemon leads (default 15 s Lease) and is frozen past its renew deadline while
           a report is deleted, another created, etcd compacted, kube-apiserver restarted.
        2. It resumes: its renewal is late, the term ends (writes it was retrying are dropped),
           and it leads a new term that lists afresh.
        Result: the same end state as without the freeze — the deleted report's findings
        Resolved, the new ones Open (with their phase written), each Observation once.
        """
        daemon = report_daemon(start_daemon, namespace)
        # Past the 10 s renew deadline, whatever the restart took.
        freeze_while_reports_change(daemon, control_plane, namespace, extra_freeze=11)
        lost = daemon.metric_sum("zen_watcher_leader_transitions_total", direction="lost")
        assert lost >= 1, daemon.logs()


class TestScope:
    def test_watch_namespace_keeps_out_other_namespaces(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """WATCH_NAMESPACE=a,b: reports in a and b become Observations; c is never written."""
        others = [f"{namespace}-{suffix}" for suffix in ("a", "b", "c")]
        for name in others:
            control_plane.kubectl("create", "namespace", name)
        a, b, c = others
        start_daemon(WATCH_NAMESPACE=f"{a},{b}", REPORT_RESOLVE_GRACE_SECONDS="1")
        documents = [fx.placed(fx.load_fixture(fx.VULNS), ns) for ns in others]
        fx.apply(control_plane, *documents)
        wait_for(
            lambda: (
                len(fx.observations(control_plane, a)) == 2
                and len(fx.observations(control_plane, b)) == 2
            )
        )
        time.sleep(2)
        assert {} == fx.observations(control_plane, c)


class TestFailover:
    def _leader(self, control_plane: cluster.Cluster, namespace: str) -> str:
        result = control_plane.kubectl(
            "get",
            "lease",
            "zen-watcher-leader-election",
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.holderIdentity}",
            check=False,
        )
        return result.stdout.strip()

    def test_one_leader_and_takeover(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """1. Two daemons share one Lease: exactly one leads, the other runs no informer.
        2. SIGTERM the leader: the follower sees the release and leads within 2 s.
        3. A third daemon joins as follower; SIGKILL the leader: the follower leads within 17 s.
        """
        first = report_daemon(start_daemon, namespace)
        second = report_daemon(start_daemon, namespace)
        daemons = {d.env["POD_NAME"]: d for d in (first, second)}
        holder = wait_for(lambda: self._leader(control_plane, namespace))
        leader = daemons[holder]
        follower = next(d for name, d in daemons.items() if name != holder)
        wait_for(lambda: leader.metric_sum("zen_watcher_leader") == 1)
        assert 0 == follower.metric_sum("zen_watcher_leader")
        # Only the filter ConfigMap (watched on every pod) may have listed on the follower.
        filter_lists = follower.metric_sum("zen_watcher_relists_total", resource="configmaps")
        assert filter_lists == follower.metric_sum("zen_watcher_relists_total")
        assert 0 == follower.metric_sum("zen_watcher_gc_runs_total")

        started = time.monotonic()
        leader.signal(signal.SIGTERM)
        wait_for(lambda: follower.metric_sum("zen_watcher_leader") == 1, timeout=10, interval=0.05)
        graceful = time.monotonic() - started
        # Within the default 2 s retry period: the follower saw the release on its watch of
        # the Lease (the shipped RBAC lets it watch), it did not wait for its next poll.
        assert graceful < 2.0
        seen = [e for e in follower.log_events() if e.get("event") == "lease_release_seen"]
        assert ["MODIFIED"] == [event["type"] for event in seen]
        assert 0 == leader.wait(timeout=30)

        third = report_daemon(start_daemon, namespace)
        wait_for(lambda: third.probe("/readyz") == 200)
        started = time.monotonic()
        follower.signal(signal.SIGKILL)
        wait_for(lambda: third.metric_sum("zen_watcher_leader") == 1, timeout=25, interval=0.1)
        crash = time.monotonic() - started
        assert crash < 17.0
        print(f"failover: graceful {graceful:.2f}s, SIGKILL {crash:.2f}s")


class TestFilterConfigMap:
    def test_live_update_and_bad_json_keeps_last_good(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """1. A filter drops Falco findings below critical.
        2. It is updated to let everything through: applied live.
        3. It is updated with invalid JSON: the last good config stays, the metric says 0.
        """

        def set_filter(text: str) -> None:
            manifest = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "zen-watcher-filter", "namespace": namespace},
                "data": {"filter.json": text},
            }
            fx.apply(control_plane, manifest)

        set_filter('{"sources": {"falco": {"minSeverity": "CRITICAL"}}}')
        daemon = start_daemon()
        body = orjson.dumps(unique_alert(1, namespace))  # priority Warning -> medium
        wait_for(lambda: daemon.post("/falco/webhook", body)[2].get("filtered") == 1)
        assert 1 <= daemon.metric_sum(
            "zen_watcher_events_total", bucket="filtered", reason="min_severity"
        )

        set_filter('{"sources": {"falco": {"minSeverity": "LOW"}}}')
        wait_for(
            lambda: (
                daemon.post("/falco/webhook", orjson.dumps(unique_alert(2, namespace)))[2].get(
                    "accepted"
                )
                == 1
            )
        )

        set_filter('{"sources": {"falco": ')
        wait_for(lambda: daemon.metric_sum("zen_watcher_filter_config_valid") == 0)
        answer = daemon.post("/falco/webhook", orjson.dumps(unique_alert(3, namespace)))[2]
        assert 1 == answer.get("accepted")


class TestWebhooksDuringSync:
    def test_leader_webhooks_keep_room_in_the_queue(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """A report with far more findings than the write queue holds, written slowly (API_QPS
        5): reports fill only their share of the queue, so the leader's Falco webhook keeps
        answering 200 while the sync runs, and everything is written in the end."""
        daemon = report_daemon(start_daemon, namespace, QUEUE_SIZE="8", API_QPS="5", API_BURST="1")
        report = fx.placed(fx.load_fixture(fx.POLICY), namespace)
        failing = next(entry for entry in report["results"] if entry["result"] == "fail")
        report["results"] = [{**failing, "policy": f"policy-{index}"} for index in range(40)]
        fx.apply(control_plane, report)
        wait_for(lambda: daemon.metric_sum("zen_watcher_queue_depth") >= 4)
        depths = []
        for _ in range(10):
            depths.append(daemon.metric_sum("zen_watcher_queue_depth"))
            time.sleep(0.1)
        assert max(depths) == 4  # the reports' half of QUEUE_SIZE, never more

        answers = [
            daemon.post("/falco/webhook", orjson.dumps(unique_alert(index, namespace)))
            for index in range(4)
        ]
        assert [status for status, _, _ in answers] == [200] * 4
        assert [body["accepted"] for _, _, body in answers] == [1] * 4

        wait_for(lambda: len(fx.observations(control_plane, namespace)) == 44, timeout=90)
