"""The demo: zen-watcher on a local control plane, fed sample reports, alerts and audit events.

`python -m tests.demo [--keep]` (or `tox -e demo`): builds/starts etcd + kube-apiserver on
loopback, installs the CRDs and the shipped RBAC, runs zen-watcher as the restricted user,
creates a PolicyReport and a VulnerabilityReport from the upstream samples, runs the curl lines
README.md shows, then prints `kubectl get observations -A` and a metrics summary.

Ctrl-C, SIGTERM or SIGHUP (and the death of whatever started it, e.g. tox, which does not pass
SIGTERM on) stop the daemon, kube-apiserver and etcd, and remove the demo's working folder.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from tests.harness import payloads
from tests.harness import reports as fx
from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess
from tests.harness.paths import REPO_ROOT

DEMO_NAMESPACE = "demo"
TOKEN = "demo-token"
EXPECTED_SOURCES = {"kyverno", "trivy", "falco", "audit"}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DAEMON_STOP_SECONDS = 10.0  # then SIGKILL: the demo's whole stop stays well under 15 s
KEEP_MESSAGE = "Ctrl-C stops everything."
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Stopped(BaseException):
    """A stop signal arrived: unwinding runs every `finally` that stops what was started.

    A BaseException, so that no `except Exception` on the way swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_stopping: list[int] = []  # the signal being handled; later ones must not cut the cleanup short


def _on_stop_signal(signum: int, _frame: FrameType | None) -> None:
    if _stopping:
        return  # tox forwards the terminal's Ctrl-C that already reached us
    _stopping.append(signum)
    raise Stopped(signum)


def install_stop_handlers() -> None:
    """Stop signals unwind the demo; if the parent dies, the kernel sends SIGTERM (Linux)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_stop_signal)
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0 and os.getppid() != parent:
        _on_stop_signal(signal.SIGTERM, None)  # the parent died before the request took


def say(text: str) -> None:
    """A progress line, shown at once; a reader that went away (tox killed) is not an error."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


def readme_curl_lines() -> list[str]:
    """The curl lines between the demo markers of README.md."""
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- demo-curl:start -->\n```sh\n(.*?)```\n<!-- demo-curl:end -->", text, re.DOTALL
    )
    if block is None:
        raise SystemExit("README.md has no demo-curl block")
    return [line for line in block.group(1).splitlines() if line.startswith("curl ")]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def stop_watcher(daemon: DaemonProcess) -> None:
    """SIGTERM (it drains and releases its Lease), SIGKILL after DAEMON_STOP_SECONDS."""
    process = daemon.process
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=DAEMON_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_watcher(running: cluster.Cluster, workdir: Path) -> DaemonProcess:
    daemon = DaemonProcess(
        kubeconfig=running.kubeconfig("zen-watcher"),
        workdir=workdir,
        env={
            "WEBHOOK_AUTH_TOKEN": TOKEN,
            "POD_NAMESPACE": cluster.SYSTEM_NAMESPACE,
            "POD_NAME": "zen-watcher-demo",
            "LOG_FORMAT": "json",
            "REPORT_RESOLVE_GRACE_SECONDS": "5",
        },
    )
    if port_free(8080) and port_free(9090):
        daemon.webhook_port, daemon.metrics_port = 8080, 9090
        daemon.env["WATCHER_PORT"], daemon.env["METRICS_PORT"] = "8080", "9090"
    daemon.start(timeout=60)
    return daemon


def create_reports(running: cluster.Cluster) -> None:
    running.kubectl("create", "namespace", DEMO_NAMESPACE, check=False)
    fx.apply(
        running,
        fx.placed(fx.load_fixture("kyverno/policyreport-pod-pass-fail.yaml"), DEMO_NAMESPACE),
        fx.placed(fx.load_fixture("trivy/vulnerabilityreport-docs-nginx.yaml"), DEMO_NAMESPACE),
    )


def post_events(daemon: DaemonProcess, workdir: Path) -> None:
    (workdir / "eventlist.json").write_bytes(payloads.event_list(payloads.audit_events()))
    for readme_line in readme_curl_lines():
        line = readme_line.replace("127.0.0.1:8080", f"127.0.0.1:{daemon.webhook_port}")
        say(f"$ {line[:110]}...")
        result = subprocess.run(
            ["bash", "-c", line],
            cwd=workdir,
            env={**os.environ, "TOKEN": TOKEN},
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        say(result.stdout.strip() or result.stderr.strip())
        if result.returncode != 0 or '"accepted"' not in result.stdout:
            raise SystemExit(f"curl failed: {result.stderr or result.stdout}")


def wait_for_observations(running: cluster.Cluster, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = running.kubectl(
            "get", "observations", "-A", "-o", "jsonpath={.items[*].spec.source}"
        )
        if EXPECTED_SOURCES <= set(listing.stdout.split()):
            return
        time.sleep(0.5)
    raise SystemExit("not every source produced an Observation in time")


def metrics_summary(daemon: DaemonProcess) -> str:
    lines = ["source   received  created  updated  deduplicated  filtered  rejected  failed"]
    for source in sorted(EXPECTED_SOURCES):
        counts = [daemon.metric_sum("zen_watcher_events_received_total", source=source)]
        for bucket in ("created", "updated", "deduplicated", "filtered", "rejected", "failed"):
            counts.append(
                daemon.metric_sum("zen_watcher_events_total", source=source, bucket=bucket)
            )
        lines.append(f"{source:8} " + "  ".join(f"{int(c):>8}" for c in counts))
    return "\n".join(lines)


def log_tails(workdir: Path, lines: int = 30) -> str:
    """The end of every log in the working folder, for a demo that failed."""
    parts = []
    for path in sorted(workdir.glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {path.name} (last {lines} lines) ---\n" + "\n".join(tail))
    return "\n".join(parts)


def show(running: cluster.Cluster, workdir: Path, keep: bool) -> None:
    """Everything the demo does once the control plane is up; the daemon stops on the way out."""
    say("starting zen-watcher as the restricted user...")
    daemon = start_watcher(running, workdir)
    try:
        say("creating a PolicyReport and a VulnerabilityReport...")
        create_reports(running)
        say("posting a Falco alert and an audit EventList with README's curl lines:")
        post_events(daemon, workdir)
        say("waiting for an Observation from every source...")
        wait_for_observations(running)
        say(running.kubectl("get", "observations", "-A").stdout)
        say(metrics_summary(daemon))
        if keep:
            say(
                f"\nzen-watcher keeps running. Try:\n  export KUBECONFIG={running.kubeconfig('admin')}"
            )
            say(f"  kubectl get obs -A\n{KEEP_MESSAGE}")
            while daemon.process is not None and daemon.process.poll() is None:
                time.sleep(1)
            say("zen-watcher exited; stopping the control plane.")
    finally:
        stop_watcher(daemon)


def run(keep: bool) -> int:
    """The demo in a fresh temporary folder, removed at the end whatever happens."""
    workdir = Path(tempfile.mkdtemp(prefix="zen-watcher-demo-"))
    try:
        say(f"working folder {workdir}; starting etcd and kube-apiserver (built on first use)...")
        with cluster.session_cluster(workdir) as running:
            say(f"control plane up: {running.server_version()['gitVersion']}")
            show(running, workdir, keep)
        return 0
    except Stopped as stop:
        say(f"stopped by {stop}; zen-watcher, kube-apiserver and etcd are down.")
        return 0 if keep else 128 + stop.signum  # with --keep, a signal is how it ends
    except BaseException:
        with contextlib.suppress(OSError):
            print(log_tails(workdir), file=sys.stderr, flush=True)
        raise
    finally:
        _stopping.append(0)  # nothing left to unwind: a late signal must not interrupt rmtree
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.demo", description=__doc__)
    parser.add_argument(
        "--keep", action="store_true", help="leave it running and print the KUBECONFIG"
    )
    keep = parser.parse_args().keep
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines as they happen, in a pipe too
    install_stop_handlers()
    return run(keep)


if __name__ == "__main__":
    sys.exit(main())
