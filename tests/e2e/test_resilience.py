"""What users rely on when things go wrong: shutdown under load, API outages, hostile input."""

from __future__ import annotations

import concurrent.futures
import signal
import threading
import time
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess
from tests.harness.daemons import StartDaemon, list_observations
from tests.harness.payloads import unique_alert
from tests.harness.polling import wait_for
from zenwatcher.mapping import falco

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
FALCO_KEYS = ["rule", "priority", "output", "time", "source", "output_fields", "hostname", "tags"]
AUDIT_KEYS = [
    "kind",
    "apiVersion",
    "items",
    "auditID",
    "stage",
    "verb",
    "user",
    "objectRef",
    "responseStatus",
]


def shaped(keys: list[str]) -> st.SearchStrategy[Any]:
    """Objects with the right field names and arbitrary values: the inputs mappers see most."""
    return st.dictionaries(st.sampled_from(keys), JSON_VALUES, max_size=len(keys))


PAYLOADS = st.one_of(
    JSON_VALUES.map(orjson.dumps),
    shaped(FALCO_KEYS).map(orjson.dumps),
    shaped(AUDIT_KEYS).map(orjson.dumps),
    st.lists(shaped(AUDIT_KEYS), max_size=4).map(
        lambda items: orjson.dumps(
            {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
        )
    ),
    st.binary(max_size=200),
    st.sampled_from(
        [b'{"rule": 1' + b"0" * 40 + b"}", b"[" * 5000 + b"]" * 5000, b'{"items": null}']
    ),
)


class TestHostileInput:
    def test_no_payload_gets_a_5xx_or_kills_the_process(self, start_daemon: StartDaemon) -> None:
        """600 generated payloads on both endpoints: every answer is 2xx or 4xx, the process lives.

        Result: no 5xx; /healthz still answers; accounting still balances.
        """
        daemon = start_daemon()
        seen: list[int] = []

        @settings(
            max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(body=PAYLOADS, endpoint=st.sampled_from(["/falco/webhook", "/audit/webhook"]))
        def check(body: bytes, endpoint: str) -> None:
            status, _, _ = daemon.post(endpoint, body)
            seen.append(status)
            assert status < 500, (endpoint, body)

        check()
        assert len(seen) >= 500
        assert 200 == daemon.probe("/healthz")
        assert daemon.process is not None
        assert daemon.process.poll() is None
        for source in ("falco", "audit"):
            received = daemon.metric_sum("zen_watcher_events_received_total", source=source)
            assert received == daemon.metric_sum("zen_watcher_events_total", source=source)


class TestGracefulShutdown:
    def test_sigterm_under_load_loses_nothing_answered_2xx(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """1. Four clients post distinct findings as fast as they can.
        2. SIGTERM arrives mid-stream; the daemon answers 503 from then on and drains.
        3. It exits 0.
        Result: every finding whose request was answered 2xx exists as an Observation.
        """
        daemon = start_daemon(API_QPS="200", SHUTDOWN_GRACE_SECONDS="30")
        accepted: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(offset: int) -> None:
            index = offset
            while not stop.is_set() and index < offset + 100000:
                alert = unique_alert(index, namespace)
                try:
                    status, _, _ = daemon.post("/falco/webhook", orjson.dumps(alert))
                except OSError:
                    return  # listener closed: shutting down
                if status == 200:
                    with lock:
                        accepted.append(falco.map_falco_alert(alert).name)
                index += 1

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(client, offset * 100000) for offset in range(4)]
            time.sleep(2.0)
            daemon.signal(signal.SIGTERM)
            exit_code = daemon.wait(timeout=60)
            stop.set()
            for future in futures:
                future.result()

        assert 0 == exit_code, daemon.logs()
        assert len(accepted) > 50
        stored = {item["metadata"]["name"] for item in list_observations(control_plane, namespace)}
        assert set() == set(accepted) - stored

    def test_readiness_goes_false_before_the_listener_closes(
        self, start_daemon: StartDaemon, namespace: str
    ) -> None:
        """After SIGTERM the pod reports not-ready, never ready again; for
        SHUTDOWN_DELAY_SECONDS the webhook still answers, 503 with Retry-After, then closes."""
        daemon = start_daemon(SHUTDOWN_GRACE_SECONDS="5", SHUTDOWN_DELAY_SECONDS="2")
        # Ready as a follower first; once it leads, ready again when its informers have synced.
        wait_for(lambda: daemon.probe("/readyz") == 200, timeout=30, interval=0.05)
        signalled = time.monotonic()
        daemon.signal(signal.SIGTERM)
        wait_for(lambda: daemon.probe("/readyz") != 200, timeout=5, interval=0.01)
        status, headers, answer = daemon.post(
            "/falco/webhook", orjson.dumps(unique_alert(1, namespace))
        )
        assert (503, "1", "shutting down") == (
            status,
            headers.get("Retry-After"),
            answer.get("error"),
        )
        assert time.monotonic() - signalled < 2
        assert daemon.process is not None
        while daemon.process.poll() is None:
            assert daemon.probe("/readyz") in (0, 503)
            time.sleep(0.01)
        assert 0 == daemon.wait(timeout=30)
        assert time.monotonic() - signalled >= 2


class TestApiServerOutage:
    def test_events_accepted_while_the_api_is_down_are_written_when_it_returns(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """1. The daemon runs; kube-apiserver is stopped.
        2. Findings keep arriving: answered 200 (queued) or 503 (queue full), never 5xx otherwise.
        3. kube-apiserver starts again on the same etcd.
        Result: every finding answered 200 is written.
        """
        plane = control_plane.require_local()
        daemon: DaemonProcess = start_daemon(QUEUE_SIZE="50")
        plane.stop_apiserver()
        accepted = []
        try:
            for index in range(80):
                alert = unique_alert(index, namespace)
                status, _, _ = daemon.post("/falco/webhook", orjson.dumps(alert))
                assert status in (200, 503)
                if status == 200:
                    accepted.append(falco.map_falco_alert(alert).name)
        finally:
            plane.start_apiserver()
        assert 50 <= len(accepted) <= 50 + 8  # the queue, plus one job held by each writer

        def written() -> bool:
            stored = {
                item["metadata"]["name"] for item in list_observations(control_plane, namespace)
            }
            return set(accepted) <= stored

        wait_for(written, timeout=90)


class TestNamespaceFallback:
    def test_finding_for_a_missing_namespace_lands_in_the_watcher_namespace(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """A namespace that does not exist does not lose the finding: POD_NAMESPACE gets it."""
        daemon = start_daemon()
        alert = unique_alert(1, "no-such-namespace")
        assert 200 == daemon.post("/falco/webhook", orjson.dumps(alert))[0]
        name = falco.map_falco_alert(alert).name
        wait_for(
            lambda: (
                name in {o["metadata"]["name"] for o in list_observations(control_plane, namespace)}
            )
        )
