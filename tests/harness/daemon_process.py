"""zen-watcher as users run it: `python -m zenwatcher run` in a child process.

Started with the restricted user's kubeconfig, on free loopback ports; stopped with a real
signal. Its JSON log lines are kept in a file a failing test can print.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from tests.harness.controlplane.controlplane import free_port

TOKEN = "test-webhook-token"


class DaemonProcess:
    """One running zen-watcher process."""

    def __init__(self, *, kubeconfig: Path, workdir: Path, env: dict[str, str]) -> None:
        self.webhook_port = free_port()
        self.metrics_port = free_port()
        self.log_path = workdir / f"zen-watcher-{self.webhook_port}.log"
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "WATCHER_PORT": str(self.webhook_port),
            "METRICS_PORT": str(self.metrics_port),
            "WEBHOOK_AUTH_TOKEN": TOKEN,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "info",
            "POD_NAME": f"zen-watcher-{self.webhook_port}",
            # Tests stop many daemons; the one that tests the delay sets it.
            "SHUTDOWN_DELAY_SECONDS": "0",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "zenwatcher", "run"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait_ready:
            self.wait_ready(timeout=timeout)

    def wait_ready(self, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"zen-watcher exited {self.process.returncode}:\n{self.logs()}"
                )
            if self.probe("/readyz") == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"zen-watcher not ready in {timeout}s:\n{self.logs()}")

    def probe(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.metrics_url + path, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return 0

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics as `name{labels}` -> value."""
        with urllib.request.urlopen(self.metrics_url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    def metric_sum(self, name: str, **labels: str) -> float:
        """Sum of `name` samples whose labels include `labels`."""
        total = 0.0
        for key, value in self.metrics().items():
            named = key == name or key.startswith(name + "{")
            if named and all(f'{label}="{wanted}"' in key for label, wanted in labels.items()):
                total += value
        return total

    def post(
        self, path: str, body: bytes, *, token: str | None = TOKEN, method: str = "POST"
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Send `body`; (status, headers, decoded JSON answer or {})."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.url + path, data=body if method == "POST" else None, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), _json(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), _json(error.read())

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> int | None:
        """SIGTERM and wait; SIGKILL if it will not stop."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.terminate()
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def rss_bytes(self) -> int:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, object]]:
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return events


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
