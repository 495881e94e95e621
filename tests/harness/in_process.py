"""zen-watcher's `daemon.run` on a thread of the test process, with a fault-injecting client.

The daemon is the real one (its HTTP listeners on real loopback sockets, the real API server);
only its KubeClient is our `HookedClient` subclass, so a test can inject faults that no real
scenario provokes quickly (a lost Lease, a failing list page), and its Metrics are kept so a
hook can read them. Each daemon runs its own event loop on its own thread, so the test may block
(kubectl, urllib) without stalling it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop
from prometheus_client import CollectorRegistry

from tests.harness.controlplane.controlplane import free_port
from tests.harness.hooked_client import After, Before, BeforeWatch, HookedClient
from zenwatcher import daemon
from zenwatcher.kube.client import Params
from zenwatcher.metrics import Metrics
from zenwatcher.settings import Settings


class Faults:
    """What one daemon's clients do besides their real calls (nothing unless set)."""

    def __init__(self) -> None:
        self.on_request: Before | None = None
        self.after: After | None = None
        self.on_watch: BeforeWatch | None = None
        self.metrics: Metrics | None = None


class FaultClient(HookedClient):
    """A HookedClient whose hooks are its daemon's `faults`, as they are set at the time."""

    def __init__(self, *, faults: Faults, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.faults = faults
        self.before, self.after, self.before_watch = self._before, self._after, self._before_watch

    async def _before(self, method: str, path: str, params: Params | None, body: Any) -> None:
        if self.faults.on_request is not None:
            await self.faults.on_request(method, path, params, body)

    async def _after(self, method: str, path: str, answer: dict[str, Any]) -> None:
        if self.faults.after is not None:
            await self.faults.after(method, path, answer)

    async def _before_watch(
        self, path: str, server_timeout: int, inactivity_timeout: float
    ) -> tuple[int, float]:
        if self.faults.on_watch is None:
            return server_timeout, inactivity_timeout
        return await self.faults.on_watch(path, server_timeout, inactivity_timeout)


class InProcessDaemon:
    """One `daemon.run` on a thread of its own; `faults` is what its clients inject."""

    def __init__(self, env: dict[str, str]) -> None:
        self.webhook_port = free_port()
        self.metrics_port = free_port()
        self.settings = Settings.from_env(
            {**env, "WATCHER_PORT": str(self.webhook_port), "METRICS_PORT": str(self.metrics_port)}
        )
        self.faults = Faults()
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=f"daemon-{self.webhook_port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def _main(self) -> None:
        async def life() -> int:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            code = await daemon.run(self.settings, stop=self._stop)
            # A process would exit here; a thread's loop must first let closed TLS
            # connections finish closing, or they are reported as unclosed.
            await asyncio.sleep(0.25)
            return code

        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                self.exit_code = runner.run(life())
        except BaseException as error:  # reported by the test through `error`
            self.error = error

    def start(self, *, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while self.probe("/readyz") != 200:
            if not self._thread.is_alive():
                raise AssertionError(f"daemon ended: {self.exit_code} {self.error!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"daemon not ready within {timeout}s")
            time.sleep(0.1)

    def probe(self, path: str) -> int:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}{path}"
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return 0

    def stop(self, timeout: float = 60.0) -> None:
        if self._thread.ident is None:
            return
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the daemon did not stop"
        assert self.error is None, repr(self.error)


@contextlib.contextmanager
def fault_clients(
    monkeypatch: pytest.MonkeyPatch, daemons: list[InProcessDaemon]
) -> Iterator[None]:
    """Make `daemon.run` build FaultClients (and keep its Metrics) for the daemon whose thread
    calls it."""
    by_thread: dict[str, InProcessDaemon] = {}

    def owner() -> InProcessDaemon:
        name = threading.current_thread().name
        if name not in by_thread:
            by_thread[name] = next(d for d in daemons if d._thread.name == name)
        return by_thread[name]

    def make_client(**kwargs: Any) -> FaultClient:
        return FaultClient(faults=owner().faults, **kwargs)

    def make_metrics(registry: CollectorRegistry, **kwargs: Any) -> Metrics:
        metrics = Metrics(registry, **kwargs)
        owner().faults.metrics = metrics
        return metrics

    with monkeypatch.context() as patch:
        patch.setattr(daemon, "KubeClient", make_client)
        patch.setattr(daemon, "Metrics", make_metrics)
        yield
