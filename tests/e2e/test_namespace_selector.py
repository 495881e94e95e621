"""WATCH_NAMESPACE_SELECTOR end to end: real daemons, a real Namespace watch, real labels."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.harness import namespaces as ns
from tests.harness import reports as fx
from tests.harness.controlplane import cluster
from tests.harness.daemon_process import TOKEN, DaemonProcess
from tests.harness.daemons import StartDaemon
from tests.harness.payloads import unique_alert
from tests.harness.polling import wait_for

SHARD = "zen.kube-zen.io/shard"


@pytest.fixture(name="reader")
def _reader(control_plane: cluster.Cluster) -> Iterator[None]:
    with ns.namespace_reader(control_plane):
        yield


@pytest.fixture(name="make_namespace")
def _make_namespace(control_plane: cluster.Cluster) -> Iterator[Any]:
    """Namespaces of this test's own (labelled as asked), removed afterwards."""
    made: list[str] = []

    def make(**labels: str) -> str:
        name = f"s-{uuid.uuid4().hex[:10]}"
        ns.create(control_plane, name, **{key.replace("__", "/"): v for key, v in labels.items()})
        made.append(name)
        return name

    yield make
    for name in made:
        ns.remove(control_plane, name)


def shard_value() -> str:
    """A label value no other test's namespace carries."""
    return f"t{uuid.uuid4().hex[:10]}"


def resource_versions(control_plane: cluster.Cluster, namespace: str) -> dict[str, str]:
    return {
        name: item["metadata"]["resourceVersion"]
        for name, item in fx.observations(control_plane, namespace).items()
    }


def left_scope(daemon: DaemonProcess, namespace: str) -> bool:
    return any(
        event.get("event") == "namespace_forgotten" and event.get("namespace") == namespace
        for event in daemon.log_events()
    )


@pytest.mark.usefixtures("reader")
class TestFollowsLabels:
    def test_label_then_relabel(
        self,
        start_daemon: StartDaemon,
        control_plane: cluster.Cluster,
        make_namespace: Any,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """1. A report in an unlabelled namespace: no Observation.
        2. The namespace is labelled: its report's Observations appear (the time is printed).
        3. The label is changed: the namespace leaves the scope. Its report is deleted and
           another created: no new Observation, and the existing ones are left exactly as
           they were (not resolved, not deleted), though the grace is 1 s.
        """
        value = shard_value()
        target = make_namespace()
        daemon = start_daemon(
            WATCH_NAMESPACE_SELECTOR=f"{SHARD}={value}", REPORT_RESOLVE_GRACE_SECONDS="1"
        )
        vulns = fx.placed(fx.load_fixture(fx.VULNS), target)
        fx.apply(control_plane, vulns)
        time.sleep(2)
        assert {} == fx.observations(control_plane, target)

        started = time.monotonic()
        ns.label(control_plane, target, SHARD, value)
        names = fx.finding_names(vulns)
        wait_for(
            lambda: fx.phases(control_plane, target) == dict.fromkeys(names, "Open"),
            interval=0.05,
        )
        with capsys.disabled():
            print(f"\nlabel to Observations: {time.monotonic() - started:.2f} s")
        before = resource_versions(control_plane, target)

        ns.label(control_plane, target, SHARD, "elsewhere")
        wait_for(lambda: left_scope(daemon, target))
        fx.delete(control_plane, vulns)
        fx.apply(control_plane, fx.placed(fx.load_fixture(fx.POLICY), target))
        time.sleep(4)  # four times the grace: a resolve would have happened
        assert before == resource_versions(control_plane, target)
        assert dict.fromkeys(names, "Open") == fx.phases(control_plane, target)

    def test_webhook_findings_follow_the_scope(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, make_namespace: Any
    ) -> None:
        """A Falco alert for a namespace is written while the namespace matches, and filtered
        as out_of_scope once its label is removed."""
        value = shard_value()
        target = make_namespace(**{SHARD.replace("/", "__"): value})
        daemon = start_daemon(WATCH_NAMESPACE_SELECTOR=f"{SHARD}={value}")
        _, _, answer = daemon.post("/falco/webhook", orjson.dumps(unique_alert(1, target)))
        assert 1 == answer["accepted"]
        ns.label(control_plane, target, SHARD, None)
        wait_for(lambda: left_scope(daemon, target))
        _, _, answer = daemon.post("/falco/webhook", orjson.dumps(unique_alert(2, target)))
        assert (0, 1) == (answer["accepted"], answer["filtered"])
        labels = {"source": "falco", "bucket": "filtered", "reason": "out_of_scope"}
        assert 1 == daemon.metric_sum("zen_watcher_events_total", **labels)

    def test_findings_gauge_follows_the_scope(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, make_namespace: Any
    ) -> None:
        """Falco findings in two selected namespaces, then one is unlabelled: the leader's
        zen_watcher_findings (scraped) has no series for it any more. The labels are swapped:
        the gauge counts the namespace that entered and nothing of the one that left."""
        value = shard_value()
        kept, moved = (make_namespace(**{SHARD.replace("/", "__"): value}) for _ in range(2))
        daemon = start_daemon(WATCH_NAMESPACE_SELECTOR=f"{SHARD}={value}")
        for index, target in enumerate((kept, kept, moved, moved, moved)):
            _, _, answer = daemon.post("/falco/webhook", orjson.dumps(unique_alert(index, target)))
            assert 1 == answer["accepted"]

        def gauge() -> dict[str, float]:
            return findings_by_namespace(daemon, kept, moved)

        wait_for(lambda: gauge() == {kept: 2.0, moved: 3.0})
        ns.label(control_plane, moved, SHARD, None)
        wait_for(lambda: gauge() == {kept: 2.0})
        ns.label(control_plane, moved, SHARD, value)
        ns.label(control_plane, kept, SHARD, None)
        wait_for(lambda: gauge() == {moved: 3.0})


def findings_by_namespace(daemon: DaemonProcess, *namespaces: str) -> dict[str, float]:
    """zen_watcher_findings summed by namespace, for those of `namespaces` with a series."""
    totals: dict[str, float] = {}
    for key, value in daemon.metrics().items():
        if key.startswith("zen_watcher_findings{"):
            for name in namespaces:
                if f'namespace="{name}"' in key:
                    totals[name] = totals.get(name, 0.0) + value
    return totals


@pytest.mark.usefixtures("reader")
class TestTwoShards:
    def test_disjoint_selectors_never_overlap_and_hand_over(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, make_namespace: Any
    ) -> None:
        """Shards `=a` and `=b` (one Lease each): each writes its own namespace's Observations
        only (counted by each daemon). Then namespace A is relabelled to b and its report
        deleted: shard b, which gained A, reads A's Observations, lists A's reports and
        resolves the vanished report's findings; shard a writes nothing more."""
        a, b = shard_value(), shard_value()
        first = make_namespace(**{SHARD.replace("/", "__"): a})
        second = make_namespace(**{SHARD.replace("/", "__"): b})
        common = {"REPORT_RESOLVE_GRACE_SECONDS": "1"}
        shard_a = start_daemon(
            WATCH_NAMESPACE_SELECTOR=f"{SHARD}={a}", LEADER_ELECTION_ID="shard-a", **common
        )
        shard_b = start_daemon(
            WATCH_NAMESPACE_SELECTOR=f"{SHARD} in ({b})", LEADER_ELECTION_ID="shard-b", **common
        )
        reports = {name: fx.placed(fx.load_fixture(fx.VULNS), name) for name in (first, second)}
        fx.apply(control_plane, *reports.values())
        for name in (first, second):
            wanted = dict.fromkeys(fx.finding_names(reports[name]), "Open")
            wait_for(lambda name=name, wanted=wanted: fx.phases(control_plane, name) == wanted)
        created = "zen_watcher_observations_created_total"
        assert (2, 2) == (shard_a.metric_sum(created), shard_b.metric_sum(created))

        ns.label(control_plane, first, SHARD, b)
        wait_for(lambda: left_scope(shard_a, first))
        fx.delete(control_plane, reports[first])
        resolved = dict.fromkeys(fx.finding_names(reports[first]), "Resolved")
        wait_for(lambda: fx.phases(control_plane, first) == resolved)
        assert 2 == shard_a.metric_sum(created)
        assert 0 == shard_a.metric_sum("zen_watcher_observations_updated_total")


class TestReadiness:
    def test_not_ready_until_the_namespaces_are_listed(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster
    ) -> None:
        """Without the namespace-reader RBAC the Namespace list is forbidden: the pod is alive
        but not ready. Once the ClusterRole is bound, the retried list succeeds and it is."""
        daemon = start_daemon(wait_ready=False, WATCH_NAMESPACE_SELECTOR=f"{SHARD}=x")
        wait_for(
            lambda: any(
                event.get("event") == "informer_backoff" and event.get("resource") == "namespaces"
                for event in daemon.log_events()
            )
        )
        assert 200 == daemon.probe("/healthz")
        with pytest.raises(urllib.error.HTTPError) as unready:
            urllib.request.urlopen(daemon.metrics_url + "/readyz", timeout=2)
        assert 503 == unready.value.code
        assert "namespace selector not listed yet" in unready.value.read().decode()
        with ns.namespace_reader(control_plane):
            wait_for(lambda: daemon.probe("/readyz") == 200)


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zenwatcher", "run"],
        capture_output=True,
        text=True,
        env={**os.environ, "WEBHOOK_AUTH_TOKEN": TOKEN, **env},
        timeout=60,
        check=False,
    )


class TestRefusedAtStart:
    def test_list_and_selector_together_exit_2_naming_both(self) -> None:
        result = _run({"WATCH_NAMESPACE": "a", "WATCH_NAMESPACE_SELECTOR": "env=prod"})
        assert 2 == result.returncode, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert "WATCH_NAMESPACE and WATCH_NAMESPACE_SELECTOR are both set" in line

    def test_bad_selector_exits_2_naming_variable_and_value(self) -> None:
        result = _run({"WATCH_NAMESPACE_SELECTOR": "env in (prod"})
        assert 2 == result.returncode, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("zen-watcher: invalid WATCH_NAMESPACE_SELECTOR='env in (prod'")
