"""The machine-side helpers of the node: commands, process groups, mounts, namespaces."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

NETNS_DIR = Path("/var/run/netns")
STOP_GRACE = 10.0


class NodeError(RuntimeError):
    """The node could not be started; the message names the log to read."""


def run(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NodeError(f"{' '.join(args)} failed: {result.stderr.strip()}")


def quiet(args: list[str]) -> int:
    return subprocess.run(args, capture_output=True, check=False).returncode


def wait_for_process(
    ready: Callable[[], bool],
    name: str,
    log: Path,
    process: subprocess.Popen[bytes],
    timeout: float = 60.0,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NodeError(f"{name} exited; {log}:\n{log.read_text(errors='replace')[-3000:]}")
        if ready():
            return
        time.sleep(0.2)
    raise NodeError(f"{name} not ready in {timeout}s; see {log}")


def kill_group(process: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def pids_with_argument(argument: str) -> set[int]:
    pids: set[int] = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if argument.encode() in (proc / "cmdline").read_bytes():
                    pids.add(int(proc.name))
    return pids


def mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # Field 5 is the mount point, with spaces escaped as \040.
        points.append(line.split()[4].replace("\\040", " "))
    return points


def netns_names() -> set[str]:
    return {p.name for p in NETNS_DIR.iterdir()} if NETNS_DIR.is_dir() else set()
