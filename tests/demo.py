"""The demo: zen-watcher on a local control plane, fed sample reports, alerts and audit events.

`python -m tests.demo [--keep]` (or `tox -e demo`): builds/starts etcd + kube-apiserver on
loopback, installs the CRDs and the shipped RBAC, runs zen-watcher as the restricted user,
creates a PolicyReport and a VulnerabilityReport from the upstream samples, runs the curl lines
README.md shows, then prints `kubectl get observations -A` and a metrics summary.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness import payloads
from tests.harness import reports as fx
from tests.harness.controlplane import cluster
from tests.harness.daemon_process import DaemonProcess
from tests.harness.paths import REPO_ROOT

DEMO_NAMESPACE = "demo"
TOKEN = "demo-token"
EXPECTED_SOURCES = {"kyverno", "trivy", "falco", "audit"}


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
        print(f"$ {line[:110]}...")
        result = subprocess.run(
            ["bash", "-c", line],
            cwd=workdir,
            env={**os.environ, "TOKEN": TOKEN},
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        print(result.stdout.strip() or result.stderr.strip())
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


def run(keep: bool) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="zen-watcher-demo-"))
    with cluster.session_cluster(workdir) as running:
        print(f"control plane up: {running.server_version()['gitVersion']}")
        daemon = start_watcher(running, workdir)
        try:
            create_reports(running)
            post_events(daemon, workdir)
            wait_for_observations(running)
            print(running.kubectl("get", "observations", "-A").stdout)
            print(metrics_summary(daemon))
            if keep:
                print(
                    f"\nzen-watcher keeps running. Try:\n  export KUBECONFIG={running.kubeconfig('admin')}"
                )
                print("  kubectl get obs -A\nCtrl-C stops everything.")
                while daemon.process is not None and daemon.process.poll() is None:
                    time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            daemon.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.demo", description=__doc__)
    parser.add_argument(
        "--keep", action="store_true", help="leave it running and print the KUBECONFIG"
    )
    return run(parser.parse_args().keep)


if __name__ == "__main__":
    sys.exit(main())
