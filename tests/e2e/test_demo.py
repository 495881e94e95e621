"""The README's main job: the demo runs from start to finish and shows every source; a signal
stops everything it started and removes what it made."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests import demo
from tests.harness.paths import REPO_ROOT

# What the demo starts, by a word of each command line.
STARTED = ("etcd", "kube-apiserver", "zenwatcher")
STOP_WITHIN_SECONDS = 13.0


def demo_env(tmp_path: Path) -> dict[str, str]:
    """The demo's temporary folder goes under `tmp_path`, where the test can look for it."""
    return {**os.environ, "TMPDIR": str(tmp_path)}


def demo_folders(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("zen-watcher-demo-*"))


class TestDemo:
    def test_demo_shows_observations_from_every_source(self, tmp_path: Path) -> None:
        """`python -m tests.demo` exits 0, prints Observations and the metrics summary, and
        leaves no working folder behind."""
        result = subprocess.run(
            [sys.executable, "-m", "tests.demo"],
            cwd=REPO_ROOT,
            env=demo_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert 0 == result.returncode, result.stdout[-3000:] + result.stderr[-3000:]
        assert "NAMESPACE" in result.stdout
        for source in ("kyverno", "trivy", "falco", "audit"):
            assert f" {source} " in result.stdout
        assert '{"accepted":1,"deduplicated":0,"filtered":0,"rejected":0}' in result.stdout
        assert "source   received  created" in result.stdout
        assert [] == demo_folders(tmp_path)


class Process:
    """A process seen in /proc, told apart from a later one with the same pid by start time."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        self.started = self._start_time()

    def _start_time(self) -> str | None:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rpartition(")")[2].split()
        return None if fields[0] == "Z" else fields[19]  # a zombie has stopped already

    def alive(self) -> bool:
        return self._start_time() == self.started

    def __repr__(self) -> str:
        return f"{self.pid}: {self.command[:120]}"


def descendants(root: int) -> list[Process]:
    """Every live process under `root`, from the parent pids in /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[Process] = []
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            found.append(Process(pid))
        except OSError:
            continue  # it ended while we looked
    return found


def read_lines(stream: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The process's output lines as they arrive (None at its end, where the pipe is closed)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert stream.stdout is not None
        with stream.stdout:
            for line in stream.stdout:
                lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue[str | None], wanted: str, timeout: float) -> list[str]:
    """The lines up to the first that contains `wanted`; fails if output ends or time runs out."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no {wanted!r} line in {timeout}s; output so far:\n{''.join(seen)}")
        if line is None:
            pytest.fail(f"the demo ended before {wanted!r}:\n{''.join(seen)}")
        seen.append(line)
        if wanted in line:
            return seen


def rest_of(lines: queue.Queue[str | None], timeout: float = 30.0) -> str:
    """What the process still writes until its output ends (or `timeout`)."""
    rest: list[str] = []
    deadline = time.monotonic() + timeout
    with contextlib.suppress(queue.Empty):
        while (line := lines.get(timeout=max(0.0, deadline - time.monotonic()))) is not None:
            rest.append(line)
    return "".join(rest)


def kill_left(started: list[Process]) -> None:
    """After a failed test, end what the demo started and left running (by pid, checked)."""
    for process in started:
        if process.alive():
            os.kill(process.pid, signal.SIGKILL)


def start_kept_demo(tmp_path: Path, *, parent: list[str] | None = None) -> subprocess.Popen[str]:
    """`python -m tests.demo --keep`, its output a pipe (not a terminal); optionally run by a
    `parent` command that gets the demo's command line appended."""
    command = [sys.executable, "-m", "tests.demo", "--keep"]
    return subprocess.Popen(
        [*(parent or []), *command],
        cwd=REPO_ROOT,
        env=demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def assert_all_gone(started: list[Process], tmp_path: Path, output: str) -> None:
    left = [process for process in started if process.alive()]
    assert [] == left, output
    assert [] == demo_folders(tmp_path), output


class TestDemoStops:
    """A real demo, kept running, then signalled as a user or a supervisor would."""

    @pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
    def test_a_signal_stops_everything_and_removes_the_folder(
        self, tmp_path: Path, signum: signal.Signals
    ) -> None:
        process = start_kept_demo(tmp_path)
        lines = read_lines(process)
        started: list[Process] = []
        try:
            # Seen before the demo ends: its progress lines are not held back in a pipe.
            seen = wait_for_line(lines, demo.KEEP_MESSAGE, timeout=300)
            assert any("control plane up" in line for line in seen)
            started = descendants(process.pid)
            commands = " ".join(child.command for child in started)
            assert all(word in commands for word in STARTED), started
            assert 1 == len(demo_folders(tmp_path))

            signalled = time.monotonic()
            process.send_signal(signum)
            returncode = process.wait(timeout=60)
            took = time.monotonic() - signalled
            output = "".join(seen) + rest_of(lines)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            kill_left(started)
        assert 0 == returncode, output
        assert took < STOP_WITHIN_SECONDS, output
        assert f"stopped by {signum.name}" in output
        assert_all_gone(started, tmp_path, output)

    def test_the_death_of_its_parent_stops_everything(self, tmp_path: Path) -> None:
        """tox 4 does not pass a SIGTERM on to the demo: when what started the demo dies
        (here a shell, killed with SIGKILL), the demo still stops and cleans up."""
        # `; true` keeps the shell as the demo's parent (no exec of the last command).
        shell = start_kept_demo(tmp_path, parent=["bash", "-c", '"$@"; true', "bash"])
        lines = read_lines(shell)
        started: list[Process] = []
        try:
            seen = wait_for_line(lines, demo.KEEP_MESSAGE, timeout=300)
            started = descendants(shell.pid)
            kept = [child for child in started if "tests.demo" in child.command]
            assert 1 == len(kept), started
            killed = time.monotonic()
            shell.kill()
            shell.wait()
            while kept[0].alive() and time.monotonic() < killed + 60:
                time.sleep(0.1)
            took = time.monotonic() - killed
            output = "".join(seen) + rest_of(lines)
        finally:
            kill_left(started)
        assert took < STOP_WITHIN_SECONDS, output
        assert "stopped by SIGTERM" in output
        assert_all_gone(started, tmp_path, output)
