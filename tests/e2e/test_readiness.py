"""/readyz as README documents it, on a real daemon against the real API server: not ready
until the leader's informers have synced, not ready while the API server is unreachable, and
ready again once each condition has passed."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.harness import reports as fx
from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess
from tests.harness.daemons import StartDaemon
from tests.harness.polling import wait_for
from zenwatcher.daemon import API_CHECK_INTERVAL, API_CHECK_TIMEOUT

NOT_SYNCED = "leader informers not synced"
UNREACHABLE = "API server not reachable"
FINDINGS = 12


def readyz(daemon: DaemonProcess) -> tuple[int, str]:
    """(status, body) of /readyz; (0, "") while nothing listens."""
    try:
        with urllib.request.urlopen(daemon.metrics_url + "/readyz", timeout=2) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()
    except OSError:
        return 0, ""


def failing_report(namespace: str) -> dict[str, object]:
    """The policy report with FINDINGS failing results, each its own finding."""
    report = fx.placed(fx.load_fixture(fx.POLICY), namespace)
    failing = next(entry for entry in report["results"] if entry["result"] == "fail")
    report["results"] = [{**failing, "policy": f"policy-{index}"} for index in range(FINDINGS)]
    return report


class TestLeaderSync:
    def test_not_ready_until_the_leaders_informers_synced(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """1. A PolicyReport with 12 failing results waits in the watched namespace.
        2. A daemon starts and leads; its writes are slow (API_QPS 2, a queue of 2), so the
           informer's first list, which queues every finding, takes seconds.
        Result: /readyz answers 503 "leader informers not synced" meanwhile and is never 200
        before the informers have synced; then it answers 200.
        """
        fx.apply(control_plane, failing_report(namespace))
        daemon = start_daemon(
            wait_ready=False,
            WATCH_NAMESPACE=namespace,
            QUEUE_SIZE="2",
            WRITER_WORKERS="1",
            API_QPS="2",
            API_BURST="1",
        )
        answers: list[tuple[int, str]] = []
        deadline = time.monotonic() + 60
        while not answers or answers[-1][0] != 200:
            assert time.monotonic() < deadline, f"never ready: {answers[-5:]}\n{daemon.logs()}"
            answers.append(readyz(daemon))
            time.sleep(0.005)
        # Ready at last: the term's informers have listed by now, not only after.
        assert 1 == daemon.metric_sum("zen_watcher_informers_synced")
        assert 1 == daemon.metric_sum("zen_watcher_leader")
        assert answers[-1] == (200, "ok")
        waiting = [body for status, body in answers if status == 503 and NOT_SYNCED in body]
        # Seconds of it at this write rate; polled every few milliseconds.
        assert len(waiting) >= 10, answers
        assert all(status in (0, 503) for status, _ in answers[:-1])


class TestApiServerUnreachable:
    @pytest.mark.parametrize("outage", ["killed", "frozen"])
    def test_not_ready_while_the_api_server_is_unreachable_and_ready_again(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, outage: str
    ) -> None:
        """1. A ready daemon (the leader) runs; kube-apiserver is killed (connections refused),
           or frozen with SIGSTOP (connections hang until the check's timeout).
        2. After a while it starts again on the same etcd, or resumes (SIGCONT).
        Result: /readyz answers 503 "API server not reachable" within one check interval
        plus the check's timeout, and keeps answering 503 while the server is away; after it
        is back, 200 again.
        """
        plane = control_plane.require_local()
        daemon = start_daemon()
        assert readyz(daemon) == (200, "ok")
        began = time.monotonic()
        if outage == "killed":
            # SIGKILL: gone at once (SIGTERM leaves it draining watches for a while).
            plane.signal_apiserver(signal.SIGKILL)
            plane.stop_apiserver()
        else:
            plane.signal_apiserver(signal.SIGSTOP)
        try:
            wait_for(
                lambda: UNREACHABLE in readyz(daemon)[1],
                timeout=API_CHECK_INTERVAL + API_CHECK_TIMEOUT + 5,
                interval=0.05,
            )
            noticed = time.monotonic() - began
            for _ in range(20):
                status, body = readyz(daemon)
                assert (status, UNREACHABLE in body) == (503, True), body
                time.sleep(0.1)
        finally:
            if outage == "killed":
                plane.start_apiserver()
            else:
                plane.signal_apiserver(signal.SIGCONT)
        back = time.monotonic()
        wait_for(lambda: readyz(daemon) == (200, "ok"), timeout=API_CHECK_INTERVAL + 30)
        print(
            f"{outage}: not ready {noticed:.1f}s after the outage began,"
            f" ready {time.monotonic() - back:.1f}s after the server was back"
        )
