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
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvloop
from prometheus_client import CollectorRegistry

from tests.harness.controlplane.controlplane import free_port
from tests.harness.hooked_client import HookedClient
from zenwatcher import daemon
from zenwatcher.kube.client import JSON_CONTENT, Params
from zenwatcher.metrics import Metrics
from zenwatcher.settings import Settings

# (method, path, params, body) before a call goes out; it may wait or raise.
RequestFault = Callable[[str, str, Params | None, Any], Awaitable[None]]
# (path, server timeout, inactivity timeout) of a watch -> the two timeouts to use; may raise.
WatchFault = Callable[[str, int, float], Awaitable[tuple[int, float]]]


class Faults:
    """What one daemon's clients do besides their real calls (nothing unless set)."""

    def __init__(self) -> None:
        self.on_request: RequestFault | None = None
        self.after: Callable[[str, str, dict[str, Any]], Awaitable[None]] | None = None
        self.on_watch: WatchFault | None = None
        self.metrics: Metrics | None = None


class FaultClient(HookedClient):
    """A HookedClient whose request hook also sees the body, and whose watches pass through
    `faults.on_watch`."""

    def __init__(self, *, faults: Faults, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.faults = faults
        self.after = self._after

    async def _after(self, method: str, path: str, answer: dict[str, Any]) -> None:
        if self.faults.after is not None:
            await self.faults.after(method, path, answer)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        content_type: str = JSON_CONTENT,
        timeout: float | None = None,
        accept: str | None = None,
    ) -> dict[str, Any]:
        if self.faults.on_request is not None:
            await self.faults.on_request(method, path, params, body)
        return await super().request(
            method,
            path,
            params=params,
            body=body,
            content_type=content_type,
            timeout=timeout,
            accept=accept,
        )

    async def stream_lines(
        self,
        path: str,
        *,
        params: Params | None = None,
        server_timeout: int,
        inactivity_timeout: float,
        accept: str | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        if self.faults.on_watch is not None:
            server_timeout, inactivity_timeout = await self.faults.on_watch(
                path, server_timeout, inactivity_timeout
            )
        lines = super().stream_lines(
            path,
            params=params,
            server_timeout=server_timeout,
            inactivity_timeout=inactivity_timeout,
            accept=accept,
        )
        async with contextlib.aclosing(lines):
            async for line in lines:
                yield line


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
