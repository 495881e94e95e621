"""The cluster tests' session: build binaries and images, start the one-node cluster, stop it.

These tests need root, Debian's container packages (tests/cluster/install.sh) and several
minutes, so the default `pytest` run does not collect them: `tox -e cluster` sets
ZEN_CLUSTER_TESTS=1 and runs them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.cluster import deploy
from tests.cluster.images import ImageBuilder
from tests.cluster.node import Node, build_node_binaries
from tests.harness.controlplane import controlplane

if os.environ.get("ZEN_CLUSTER_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]

# Printed at the end of the run (cold build and test durations, the measured numbers).
REPORT: dict[str, str] = {}
_SESSION_STARTED = time.monotonic()


@pytest.fixture(name="node", scope="session")
def _node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The running one-node cluster; everything it started is undone after the session."""
    workdir = tmp_path_factory.mktemp("cluster")
    started = time.monotonic()
    control_bin = controlplane.build_binaries()
    node_bin = build_node_binaries()
    REPORT["binaries (build or cache)"] = f"{time.monotonic() - started:.1f} s"
    started = time.monotonic()
    images = ImageBuilder(log_dir=workdir / "image-logs").all()
    REPORT["images (build or cache)"] = f"{time.monotonic() - started:.1f} s"
    for image in images:
        REPORT[f"image {image.name}"] = f"{image.archive.stat().st_size / 2**20:.0f} MiB archive"
    node = Node(
        workdir=workdir / "node",
        control_bin=control_bin,
        node_bin=node_bin,
        images=images,
    )
    try:
        node.start()
        REPORT["cluster start to node Ready"] = f"{node.timings['cluster_start_seconds']:.1f} s"
        yield node
    finally:
        problems = node.stop()
        if problems:
            REPORT["cleanup problems"] = "; ".join(problems)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT:
        return
    REPORT["whole session"] = f"{time.monotonic() - _SESSION_STARTED:.1f} s"
    terminalreporter.section("one-node cluster")
    for key, value in REPORT.items():
        terminalreporter.write_line(f"{key}: {value}")


@pytest.fixture(name="installed", scope="session")
def _installed(node: Node) -> deploy.Installed:
    """`kubectl apply -k manifests/` as shipped, rolled out (first use installs it)."""
    installed = deploy.install(node)
    REPORT["kubectl apply -k manifests/ to rollout complete"] = (
        f"{installed.apply_to_ready_seconds:.1f} s"
    )
    return installed
