"""The machine-side helpers of the node: commands, process groups, mounts, namespaces."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

NETNS_DIR = Path("/var/run/netns")
STOP_GRACE = 10.0
# In /run: cleared at boot, as the kernel state (addresses, iptables, mounts) it speaks for.
CLAIM_FILE = Path("/run/zen-watcher-cluster-tests.claim")


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


class MachineClaim:
    """One cluster test run per machine, and a record of what a killed run left.

    The run holds an exclusive `flock` on the claim file for its whole life; the kernel drops
    it when the holder dies, SIGKILL included, so a lock that is free means no run is alive.
    The file names the holder's working folder from before its first change to the machine
    until its `stop()` undid them all: a name found there by the next run is a run that was
    killed (or could not clean up), and its leftovers are the next run's to undo.
    """

    def __init__(self, path: Path = CLAIM_FILE) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> Path | None:
        """Take the machine; return the working folder a killed run left, if any."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise NodeError(
                f"another cluster test runs on this machine (it holds the lock on {self.path})"
            ) from None
        self._fd = fd
        left = os.read(fd, 4096).decode().strip()
        return Path(left) if left else None

    def record(self, workdir: Path) -> None:
        """Name `workdir` as this run's, before the run changes the machine."""
        self._write(str(workdir.resolve()))

    def release(self, *, clean: bool) -> None:
        """Let the machine go; `clean` when everything was undone, so nothing is left to name."""
        if self._fd is None:
            return
        if clean:
            self._write("")
        os.close(self._fd)  # closing the last descriptor drops the lock
        self._fd = None

    def _write(self, text: str) -> None:
        if self._fd is None:
            raise NodeError("the machine claim is not held")
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)
        os.fsync(self._fd)
