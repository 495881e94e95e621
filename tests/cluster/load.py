"""Steady webhook load through the Service from a background thread, remembering every alert
that was answered 2xx (so a test can check each is in the API afterwards)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
from collections import Counter
from dataclasses import dataclass, field

from tests.cluster import deploy


def alert(namespace: str, index: int) -> dict[str, object]:
    """A Falco alert of its own (the pod name differs), so each is one Observation."""
    return {
        "rule": "Terminal shell in container",
        "priority": "Warning",
        "output": f"shell in load-{index}",
        "time": "2026-01-01T00:00:00Z",
        "output_fields": {
            "k8s.ns.name": namespace,
            "k8s.pod.name": f"load-{index}",
            "container.id": "c1",
        },
    }


@dataclass
class SteadyLoad:
    """POSTs one alert every `interval` seconds; a 503 with Retry-After is retried after it, as
    a client should; anything else that is not 2xx is counted as a failure."""

    url: str
    token: str
    namespace: str
    interval: float = 0.1
    accepted: list[int] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SteadyLoad:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            body = json.dumps(alert(self.namespace, index)).encode()
            for _ in range(20):
                try:
                    status, headers = deploy.post(self.url, body, self.token, timeout=5)
                except (urllib.error.URLError, OSError) as error:
                    self.outcomes[f"transport: {type(error).__name__}"] += 1
                    time.sleep(0.2)  # connection refused or reset: try again
                    continue
                self.outcomes[str(status)] += 1
                if status == 503 and "Retry-After" in headers:
                    time.sleep(min(float(headers["Retry-After"]), 2.0))
                    continue
                if 200 <= status < 300:
                    self.accepted.append(index)
                break
            index += 1
            self._stop.wait(self.interval)
