"""Under a burst of large audit batches through the Service, the container stays below its
512Mi limit: the peak is read from its memory cgroup on the node (cgroups v1), and the kernel
OOM-killed nothing."""

from __future__ import annotations

import concurrent.futures
import copy
import uuid
from pathlib import Path
from typing import Any

from tests.cluster import deploy
from tests.cluster.conftest import REPORT
from tests.harness.payloads import audit_events, event_list

BATCHES = 16
EVENTS_PER_BATCH = 3000  # several MiB each, within WEBHOOK_MAX_BODY_BYTES (16 MiB)
LIMIT = 512 * 2**20


def large_batch(index: int) -> bytes:
    """An audit EventList of the fixtures' events over and over, each with an auditID of its
    own: the daemon parses and maps every one, and they repeat a few findings (so the burst
    costs memory, not minutes of API writes that later tests would wait behind)."""
    fixtures = audit_events()
    events = []
    for number in range(EVENTS_PER_BATCH):
        event = copy.deepcopy(fixtures[number % len(fixtures)])
        event["auditID"] = f"{index}-{number}-{uuid.uuid4()}"
        events.append(event)
    return event_list(events)


def memory_cgroup(pod: dict[str, Any]) -> Path:
    """The container's memory cgroup on the node (cgroupfs driver, cgroups v1)."""
    metadata, status = pod["metadata"], pod["status"]
    container = str(status["containerStatuses"][0]["containerID"]).removeprefix("containerd://")
    qos = str(status["qosClass"]).lower()
    root = Path("/sys/fs/cgroup/memory/kubepods")
    pod_dir = f"pod{metadata['uid']}"
    path = (root / pod_dir if qos == "guaranteed" else root / qos / pod_dir) / container
    assert path.is_dir(), f"no memory cgroup at {path}"
    return path


def oom_kills(cgroup: Path) -> int:
    for line in (cgroup / "memory.oom_control").read_text().splitlines():
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    return 0


def test_burst_of_large_audit_batches_stays_under_the_limit(installed: deploy.Installed) -> None:
    pod = installed.ready_pods()[0]
    cgroup = memory_cgroup(pod)
    assert LIMIT == int((cgroup / "memory.limit_in_bytes").read_text())
    (cgroup / "memory.max_usage_in_bytes").write_text("0")  # peak from here on
    bodies = [large_batch(index) for index in range(BATCHES)]
    url = installed.service_url() + "/audit/webhook"
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda body: deploy.post(url, body, installed.webhook_token, 120), bodies)
        )
    statuses = sorted({status for status, _ in answers})
    peak = int((cgroup / "memory.max_usage_in_bytes").read_text())
    REPORT["memory peak under the audit burst"] = (
        f"{peak / 2**20:.0f} MiB of 512 MiB ({BATCHES} batches of {len(bodies[0]) / 2**20:.1f} "
        f"MiB, 8 at a time; answers {statuses})"
    )
    assert set(statuses) <= {200, 503}, statuses
    assert 200 in statuses
    assert peak < LIMIT
    assert 0 == oom_kills(cgroup)
    after = next(
        p for p in installed.ready_pods() if p["metadata"]["uid"] == pod["metadata"]["uid"]
    )
    assert 0 == after["status"]["containerStatuses"][0]["restartCount"]
