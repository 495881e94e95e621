"""Leader election on the real kube-apiserver: one leader, handover, loss, conflicts, races.

Timings are short (lease 2 s, renew deadline 1.5 s, retry 0.3 s) so the whole file runs in
seconds. The Lease lives in the test's own namespace and is handled by an admin client, because
the restricted `zen-watcher` user may touch Leases only in zen-system. Every candidate's lead()
reports to one shared `LeadTracker`, and every test ends by checking that no two lead() bodies
ever ran at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Literal

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from tests.harness.controlplane import cluster
from tests.harness.hooked_client import HookedClient
from zenwatcher.election import elector
from zenwatcher.kube import config as kube_config
from zenwatcher.kube import errors, leases
from zenwatcher.kube.client import MERGE_PATCH, KubeClient, Params
from zenwatcher.kube.config import Connection
from zenwatcher.metrics import Metrics

pytestmark = pytest.mark.apiserver

LEASE_NAME = "zen-watcher-leader-election"
LEASE_DURATION = 2.0
RENEW_DEADLINE = 1.5
RETRY_PERIOD = 0.3
# Scheduling and API latency allowance on top of the protocol's own bounds.
MARGIN = 0.5
# The longest wait between two acquire attempts (client-go JitterFactor 1.2).
MAX_JITTERED_RETRY = RETRY_PERIOD * (1 + elector.JITTER_FACTOR)


FirstCall = Literal["forever", "raise", "return"]


class LeadTracker:
    """Which candidates' lead() bodies run right now, and the most ever running at once."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.max_running = 0
        self.starts: list[tuple[str, float]] = []
        self._changed = asyncio.Event()

    def lead_for(self, identity: str, *, first_call: FirstCall = "forever") -> elector.Lead:
        """A lead() whose first call runs forever, raises or returns (later calls run forever)."""
        calls = 0

        async def lead() -> None:
            nonlocal calls
            calls += 1
            self._begin(identity)
            try:
                if calls == 1 and first_call == "raise":
                    raise RuntimeError("lead() failed (injected)")
                if calls == 1 and first_call == "return":
                    return
                await asyncio.Event().wait()
            finally:
                self._end(identity)

        return lead

    async def wait_until(self, predicate: Callable[[], bool], *, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    def _begin(self, identity: str) -> None:
        self.running.add(identity)
        self.max_running = max(self.max_running, len(self.running))
        self.starts.append((identity, time.monotonic()))
        self._notify()

    def _end(self, identity: str) -> None:
        self.running.discard(identity)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


@dataclasses.dataclass
class Candidate:
    """One elector, its own metrics registry, and the task running it."""

    identity: str
    election: elector.LeaderElector
    registry: CollectorRegistry
    task: asyncio.Task[None] | None = None

    def start(self, lead: elector.Lead) -> None:
        self.task = asyncio.create_task(self.election.run(lead), name=f"elector:{self.identity}")

    async def stop(self) -> None:
        """Cancel run() and wait; an unexpected error from run() surfaces here."""
        if self.task is None:
            return
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


class StallingProxy:
    """An injected network fault: a loopback TCP forwarder to the API server that can stall.

    Once stalled, no byte moves either way and new connections hang, so requests through it
    time out instead of failing fast: the worst case for a leader's renewals.
    """

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def stall(self) -> None:
        self._flowing.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            await self._flowing.wait()
            up_reader, upstream = await asyncio.open_connection(*self._target)
            pipes = [
                asyncio.create_task(self._pipe(reader, upstream)),
                asyncio.create_task(self._pipe(up_reader, writer)),
            ]
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
        except OSError:
            pass
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()
                    with contextlib.suppress(OSError, asyncio.CancelledError):
                        await stream.wait_closed()
            self._handlers.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()


class RacingClient(HookedClient):
    """An injected delay: holds this candidate's first write until every candidate has read.

    All candidates then create, or all replace from the same resourceVersion, so the API
    server's 409 alone picks the leader, not the luck of request timing.
    """

    def __init__(self, *, connection: Connection, barrier: asyncio.Barrier) -> None:
        super().__init__(connection=connection, timeout=5)
        self._barrier = barrier
        self._held = False
        self.before = self._hold_first_write

    async def _hold_first_write(
        self, method: str, path: str, params: Params | None, body: Any
    ) -> None:
        if method in {"POST", "PUT"} and not self._held:
            self._held = True
            await self._barrier.wait()


class Field:
    """The candidates of one test, their shared tracker, and what must be closed afterwards."""

    def __init__(self, *, connection: Connection, client: KubeClient, namespace: str) -> None:
        self.connection = connection
        self.client = client
        self.namespace = namespace
        self.tracker = LeadTracker()
        self.candidates: list[Candidate] = []
        self.closers: list[Callable[[], Awaitable[None]]] = []

    def candidate(
        self,
        identity: str,
        *,
        client: KubeClient | None = None,
        timings: tuple[float, float, float] = (LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD),
    ) -> Candidate:
        """A candidate; `timings` are its lease duration, renew deadline and retry period."""
        registry = CollectorRegistry()
        lease_duration, renew_deadline, retry_period = timings
        made = Candidate(
            identity=identity,
            election=elector.LeaderElector(
                client=client or self.client,
                namespace=self.namespace,
                name=LEASE_NAME,
                identity=identity,
                lease_duration=lease_duration,
                renew_deadline=renew_deadline,
                retry_period=retry_period,
                metrics=Metrics(registry),
            ),
            registry=registry,
        )
        self.candidates.append(made)
        return made

    async def stalling_client(self) -> tuple[KubeClient, StallingProxy]:
        """An admin client whose traffic passes through a `StallingProxy`."""
        url = urllib.parse.urlsplit(self.connection.base_url)
        assert url.hostname is not None
        assert url.port is not None
        proxy = StallingProxy(url.hostname, url.port)
        port = await proxy.start()
        proxied = dataclasses.replace(
            self.connection, base_url=f"{url.scheme}://{url.hostname}:{port}"
        )
        client = KubeClient(connection=proxied, timeout=5)
        self.closers += [proxy.close, client.close]
        return client, proxy

    def racing_clients(self, count: int) -> list[KubeClient]:
        """Admin clients whose first writes wait for each other (see `RacingClient`)."""
        barrier = asyncio.Barrier(count)
        clients = [RacingClient(connection=self.connection, barrier=barrier) for _ in range(count)]
        self.closers += [client.close for client in clients]
        return list(clients)

    async def lease(self) -> dict[str, Any]:
        return await leases.get_lease(self.client, self.namespace, LEASE_NAME)

    async def close(self) -> None:
        for candidate in self.candidates:
            await candidate.stop()
        for closer in reversed(self.closers):
            await closer()


@pytest.fixture(name="admin_connection")
async def _admin_connection(control_plane: cluster.Cluster) -> Connection:
    """Admin credentials: the Lease lives in the test's namespace, outside zen-watcher's RBAC."""
    return await kube_config.load_connection(str(control_plane.kubeconfig("admin")))


@pytest.fixture(name="field")
async def _field(admin_connection: Connection, namespace: str) -> AsyncIterator[Field]:
    """Candidates for one test on an admin client; all stopped and closed afterwards."""
    client = KubeClient(connection=admin_connection, timeout=5)
    field = Field(connection=admin_connection, client=client, namespace=namespace)
    try:
        yield field
    finally:
        await field.close()
        await client.close()
    assert field.tracker.max_running <= 1, "two lead() bodies ran at the same time"


def events(
    logs: list[MutableMapping[str, Any]], name: str, identity: str | None = None
) -> list[MutableMapping[str, Any]]:
    """The captured log entries of one event, optionally of one candidate."""
    return [e for e in logs if e["event"] == name and identity in (None, e.get("identity"))]


async def first_leader(*candidates: Candidate, timeout: float = 5.0) -> Candidate:
    """The first of `candidates` to lead."""
    waiters = {asyncio.ensure_future(c.election.wait_leading()): c for c in candidates}
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    assert done, f"nobody led within {timeout} s"
    return waiters[done.pop()]


class TestOneLeader:
    async def test_exactly_one_of_two_leads(self, field: Field) -> None:
        """Two candidates: one leads, the other follows, and the Lease names the leader.

        1. Start candidates a and b.
        2. Wait for the first to lead, then for several retry periods.
        Result: exactly one leads, its gauge is 1 and the other's 0, the Lease names it.
        """
        a, b = field.candidate("pod-a"), field.candidate("pod-b")
        a.start(field.tracker.lead_for("pod-a"))
        b.start(field.tracker.lead_for("pod-b"))
        leader = await first_leader(a, b)
        follower = b if leader is a else a
        await asyncio.sleep(4 * RETRY_PERIOD)

        assert (True, False) == (leader.election.is_leader, follower.election.is_leader)
        assert {leader.identity} == field.tracker.running
        assert 1.0 == leader.sample("zen_watcher_leader")
        assert 0.0 == follower.sample("zen_watcher_leader")
        assert 1.0 == leader.sample("zen_watcher_leader_transitions_total", direction="acquired")
        spec = (await field.lease())["spec"]
        assert leader.identity == spec["holderIdentity"]
        assert 2 == spec["leaseDurationSeconds"]

    async def test_has_tried_once_the_first_attempt_ends(self, field: Field) -> None:
        """Readiness waits for `has_tried`: until the first attempt ends a pod may lead.

        1. Candidate a is made but not started; then started; then b is started.
        Result: a has not tried before it runs, and has tried once it leads (the same moment);
        b, which cannot acquire, has tried after its first attempt and does not lead.
        """
        a, b = field.candidate("pod-a"), field.candidate("pod-b")
        assert not a.election.has_tried
        a.start(field.tracker.lead_for("pod-a"))
        await field.tracker.wait_until(lambda: "pod-a" in field.tracker.running, timeout=5)
        assert (True, True) == (a.election.has_tried, a.election.is_leader)
        b.start(field.tracker.lead_for("pod-b"))
        await asyncio.sleep(RETRY_PERIOD)  # its first attempt, at once: one GET on loopback
        assert (True, False) == (b.election.has_tried, b.election.is_leader)


class TestGracefulHandover:
    async def test_follower_leads_within_a_retry_period_of_release(self, field: Field) -> None:
        """Shutdown: cancel the leader's run(), then release(); the follower takes over at once.

        1. a leads, b follows and has seen a's renewals.
        2. Cancel a's run(): its work stops and its gauge drops, but the Lease stays a's.
        3. a.release().
        Result: b leads within 1.5 s of the release, far sooner than the 2 s lease would
        allow; the Lease counts one transition; a second release() is a no-op.
        """
        a, b = field.candidate("pod-a"), field.candidate("pod-b")
        a.start(field.tracker.lead_for("pod-a"))
        await first_leader(a)
        b.start(field.tracker.lead_for("pod-b"))
        await asyncio.sleep(3 * RETRY_PERIOD)

        with capture_logs() as logs:
            await a.stop()
            assert set() == field.tracker.running
            assert 0.0 == a.sample("zen_watcher_leader")
            assert "pod-a" == (await field.lease())["spec"]["holderIdentity"]
            await a.election.release()
            released_at = time.monotonic()
            await first_leader(b)
            handover = time.monotonic() - released_at
            await a.election.release()

        assert handover < 1.5
        assert 1 == len(events(logs, "lease_released", "pod-a"))
        spec = (await field.lease())["spec"]
        assert ("pod-b", 1) == (spec["holderIdentity"], spec["leaseTransitions"])

    async def test_release_is_taken_at_once_not_at_the_next_retry(self, field: Field) -> None:
        """The follower watches the Lease: a release wakes it, whatever its retry period.

        1. a and b with a 5 s retry period (lease 10 s); a leads, b has made its first attempt
           and waits for its next one, about 5 s away.
        2. a stops and releases.
        Result: b leads within 1 s of the release (polling alone would take 4 s or more),
        and it logged that it saw the release.
        """
        slow = (10.0, 8.0, 5.0)
        a = field.candidate("pod-a", timings=slow)
        b = field.candidate("pod-b", timings=slow)
        a.start(field.tracker.lead_for("pod-a"))
        await first_leader(a)
        with capture_logs() as logs:
            b.start(field.tracker.lead_for("pod-b"))
            # Its first attempt (one GET on loopback) is over and its watch open; its next
            # poll is about 4 s away.
            await asyncio.sleep(1.0)
            assert (True, False) == (b.election.has_tried, b.election.is_leader)
            await a.stop()
            await a.election.release()
            released_at = time.monotonic()
            await first_leader(b, timeout=10)
            handover = time.monotonic() - released_at

        assert handover < 1.0, handover
        assert ["MODIFIED"] == [e["type"] for e in events(logs, "lease_release_seen")]

    async def test_without_the_watch_the_follower_still_polls(self, field: Field) -> None:
        """RBAC without `watch` on leases (an injected 403 on b's watch): b says so once and
        takes over the released Lease at its next retry, as client-go's candidates do.
        """
        refusing = HookedClient(connection=field.connection, timeout=5)
        field.closers.append(refusing.close)

        async def refuse(path: str, server_timeout: int, inactivity: float) -> tuple[int, float]:
            raise errors.Forbidden(403, {"reason": "Forbidden", "message": "watch refused"})

        refusing.before_watch = refuse
        a = field.candidate("pod-a")
        b = field.candidate("pod-b", client=refusing)
        a.start(field.tracker.lead_for("pod-a"))
        await first_leader(a)
        with capture_logs() as logs:
            b.start(field.tracker.lead_for("pod-b"))
            await asyncio.sleep(3 * RETRY_PERIOD)
            await a.stop()
            await a.election.release()
            released_at = time.monotonic()
            await first_leader(b)
            handover = time.monotonic() - released_at

        assert handover <= MAX_JITTERED_RETRY + MARGIN
        assert 1 == len(events(logs, "lease_watch_refused"))
        assert not events(logs, "lease_release_seen")


class TestLostRenewals:
    async def test_leader_stops_by_the_deadline_and_follower_takes_over_after_expiry(
        self, field: Field
    ) -> None:
        """The leader's API traffic stalls (an injected fault via `StallingProxy`).

        1. a leads through the proxy; b follows on a direct connection.
        2. Stall the proxy at t0: a's renewals hang until their timeouts.
        Result: a's work is cancelled within renew_deadline (+ margin) of t0, with
        `lease_lost` reason renew_deadline_exceeded; b leads only after a's lease expired
        in its eyes (about lease_duration after t0) and only after a's work had stopped.
        """
        stalling_client, proxy = await field.stalling_client()
        a = field.candidate("pod-a", client=stalling_client)
        b = field.candidate("pod-b")
        a.start(field.tracker.lead_for("pod-a"))
        await first_leader(a)
        b.start(field.tracker.lead_for("pod-b"))
        await asyncio.sleep(3 * RETRY_PERIOD)

        with capture_logs() as logs:
            stalled_at = time.monotonic()
            proxy.stall()
            await field.tracker.wait_until(lambda: "pod-a" not in field.tracker.running, timeout=5)
            a_stopped = time.monotonic() - stalled_at
            await first_leader(b, timeout=5)
            b_started = time.monotonic() - stalled_at

        assert a_stopped <= RENEW_DEADLINE + MARGIN
        assert not a.election.is_leader
        assert 1.0 == a.sample("zen_watcher_leader_transitions_total", direction="lost")
        assert ["renew_deadline_exceeded"] == [e["reason"] for e in events(logs, "lease_lost")]
        assert a_stopped < b_started
        assert LEASE_DURATION - RETRY_PERIOD - 0.2 <= b_started
        assert b_started <= LEASE_DURATION + MAX_JITTERED_RETRY + MARGIN
        assert "pod-b" == (await field.lease())["spec"]["holderIdentity"]

    async def test_a_crashed_leader_is_replaced_a_lease_after_its_last_renewal(
        self, field: Field
    ) -> None:
        """The follower sees each renewal through its watch, not at its next poll.

        1. a leads through the proxy, renewing every 0.3 s (lease 4 s); b follows with a 2.5 s
           retry period, so it reads the Lease only every 2.5 to 3 s.
        2. Right after one of a's renewals, a's traffic stalls, as a crash would end it.
        Result: b leads a lease (4 s) after that renewal, give or take the margin, and not
        before. Seen only at b's next poll, the renewal would count up to 3 s later.
        """
        stalling_client, proxy = await field.stalling_client()
        a = field.candidate("pod-a", client=stalling_client, timings=(4.0, 3.5, RETRY_PERIOD))
        b = field.candidate("pod-b", timings=(4.0, 3.5, 2.5))
        a.start(field.tracker.lead_for("pod-a"))
        await first_leader(a)
        b.start(field.tracker.lead_for("pod-b"))
        await asyncio.sleep(1.0)  # b has read the Lease once and watches it
        renewed = (await field.lease())["spec"]["renewTime"]
        for _ in range(300):  # a renews every 0.3 s: the next renewal, read within 10 ms
            if (await field.lease())["spec"]["renewTime"] != renewed:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("a did not renew within 3 s")
        stalled_at = time.monotonic()
        proxy.stall()
        await first_leader(b, timeout=10)
        took = time.monotonic() - stalled_at

        assert 4.0 - 0.1 <= took <= 4.0 + MARGIN, took
        assert "pod-b" == (await field.lease())["spec"]["holderIdentity"]


class TestRenewalConflicts:
    async def test_stale_copy_is_reread_and_renewed(self, field: Field) -> None:
        """Someone else touches the Lease without taking it: the leader renews anyway.

        1. a leads.
        2. Another writer adds a label, so a's copy of the Lease is stale.
        Result: a's next renewal gets 409, re-reads (client-go's slow path) and renews;
        no renewal fails and a keeps leading.
        """
        a = field.candidate("pod-a")
        a.start(field.tracker.lead_for("pod-a"))
        await first_leader(a)
        with capture_logs() as logs:
            await _merge_patch(field, {"metadata": {"labels": {"touched": "yes"}}})
            touched = (await field.lease())["spec"]["renewTime"]
            await asyncio.sleep(4 * RETRY_PERIOD)

        assert a.election.is_leader
        assert {"pod-a"} == field.tracker.running
        assert not events(logs, "lease_renew_failed")
        assert not events(logs, "lease_lost")
        spec = (await field.lease())["spec"]
        assert "pod-a" == spec["holderIdentity"]
        assert touched < spec["renewTime"]

    async def test_another_holder_stops_the_work_at_once(self, field: Field) -> None:
        """Another holder appears in the Lease: the leader stops at its next renewal.

        1. a leads.
        2. An intruder writes itself as holder.
        Result: a's work is cancelled within one retry period (+ margin), not after the
        renew deadline, with `lease_lost` reason held_by_another.
        """
        a = field.candidate("pod-a")
        a.start(field.tracker.lead_for("pod-a"))
        await first_leader(a)
        with capture_logs() as logs:
            await _merge_patch(field, {"spec": {"holderIdentity": "intruder"}})
            taken_at = time.monotonic()
            await field.tracker.wait_until(lambda: not field.tracker.running, timeout=5)
            stopped_after = time.monotonic() - taken_at
            await asyncio.sleep(RETRY_PERIOD)  # lease_lost is logged once the term is wound up

        assert stopped_after <= RETRY_PERIOD + MARGIN
        assert ["held_by_another"] == [e["reason"] for e in events(logs, "lease_lost")]
        assert not a.election.is_leader
        await a.election.release()
        assert "intruder" == (await field.lease())["spec"]["holderIdentity"]


class TestLeaderWorkEnds:
    @pytest.mark.parametrize(
        ("first_call", "logged"),
        [("raise", "leader_work_failed"), ("return", "leader_work_ended")],
    )
    async def test_leadership_given_up_and_reacquired(
        self, field: Field, first_call: FirstCall, logged: str
    ) -> None:
        """lead() raising or returning ends the term: the Lease is released, then re-acquired.

        1. a's first lead() raises (or returns).
        Result: a logs it, releases the Lease, and leads again with a second lead() call;
        acquired twice, lost once; the re-acquisition of the released Lease is a transition.
        """
        a = field.candidate("pod-a")
        with capture_logs() as logs:
            a.start(field.tracker.lead_for("pod-a", first_call=first_call))
            await field.tracker.wait_until(lambda: len(field.tracker.starts) == 2, timeout=5)

        assert a.election.is_leader
        assert [logged, "lease_released", "lease_acquired"] == [
            e["event"] for e in logs if e["event"] in {logged, "lease_released", "lease_acquired"}
        ][1:]
        assert 2.0 == a.sample("zen_watcher_leader_transitions_total", direction="acquired")
        assert 1.0 == a.sample("zen_watcher_leader_transitions_total", direction="lost")
        spec = (await field.lease())["spec"]
        assert ("pod-a", 1) == (spec["holderIdentity"], spec["leaseTransitions"])


class TestRaces:
    @pytest.mark.parametrize("lease_state", ["absent", "released"])
    async def test_simultaneous_writes_never_run_two_leaders(
        self, field: Field, lease_state: str
    ) -> None:
        """Three candidates write at the same instant: a 409 decides, never two leaders.

        1. The Lease is absent (a create race) or released (a replace race).
        2. Start three candidates whose first writes wait for each other (`RacingClient`),
           so all three create, or all three replace from the same resourceVersion.
        3. Watch for several retry periods.
        Result: the two losers each saw one 409 (`lease_conflict`, not an error) and then
        followed; exactly one candidate leads; no two lead() bodies ever ran at once.
        """
        if lease_state == "released":
            await leases.create_lease(field.client, _released_lease(field.namespace))
        trio = [
            field.candidate(f"pod-{letter}", client=client)
            for letter, client in zip("abc", field.racing_clients(3), strict=True)
        ]
        with capture_logs() as logs:
            for candidate in trio:
                candidate.start(field.tracker.lead_for(candidate.identity))
            leader = await first_leader(*trio)
            await asyncio.sleep(5 * RETRY_PERIOD)

        assert [leader] == [c for c in trio if c.election.is_leader]
        assert 1 == field.tracker.max_running
        assert [leader.identity] == [identity for identity, _ in field.tracker.starts]
        conflicts = events(logs, "lease_conflict")
        assert {c.identity for c in trio} - {leader.identity} == {e["identity"] for e in conflicts}
        assert 2 == len(conflicts)
        assert not events(logs, "lease_write_failed")
        transitions = (await field.lease())["spec"]["leaseTransitions"]
        assert (0 if lease_state == "absent" else 5) == transitions


async def _merge_patch(field: Field, patch: dict[str, Any]) -> None:
    """Change the Lease as another writer would (a new resourceVersion)."""
    await field.client.request(
        "PATCH",
        leases.object_path(field.namespace, LEASE_NAME),
        body=patch,
        content_type=MERGE_PATCH,
    )


def _released_lease(namespace: str) -> dict[str, Any]:
    stamp = "2026-01-01T00:00:00.000000Z"
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": LEASE_NAME, "namespace": namespace},
        "spec": {
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": 4,
        },
    }
