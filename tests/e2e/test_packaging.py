"""The package installs the way the Dockerfile installs it, and the installed command runs."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.harness.controlplane import cluster
from tests.harness.controlplane.controlplane import free_port
from tests.harness.daemon_process import TOKEN
from tests.harness.paths import REPO_ROOT


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert 0 == result.returncode, (
        f"{' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )
    return result


class TestDockerfileInstall:
    def test_wheels_install_into_a_clean_venv_and_start(
        self, control_plane: cluster.Cluster, namespace: str, tmp_path: Path
    ) -> None:
        """1. `pip wheel` the project and its dependencies (the Dockerfile's first stage).
        2. Install only from those wheels into a fresh virtual environment (its second stage).
        3. Start the installed `zen-watcher run` as the restricted user.
        Result: `--version` answers and /readyz reports ready.
        """
        wheels, venv = tmp_path / "wheels", tmp_path / "venv"
        run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            str(REPO_ROOT),
        )
        run(sys.executable, "-m", "venv", str(venv))
        version = next(wheels.glob("zen_watcher-*.whl")).name.split("-")[1]
        pip = venv / "bin" / "pip"
        run(
            str(pip),
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(wheels),
            f"zen-watcher=={version}",
        )
        command = venv / "bin" / "zen-watcher"
        assert f"zen-watcher {version}" == run(str(command), "--version").stdout.strip()

        control_plane.grant_watcher_role(namespace)
        metrics_port = free_port()
        env = {
            "KUBECONFIG": str(control_plane.kubeconfig("zen-watcher")),
            "POD_NAMESPACE": namespace,
            "WATCHER_PORT": str(free_port()),
            "METRICS_PORT": str(metrics_port),
            "WEBHOOK_AUTH_TOKEN": TOKEN,
            "PATH": "/usr/bin:/bin",
        }
        log = tmp_path / "zen-watcher.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(command), "run"], env=env, stdout=output, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + 30
            ready = False
            while time.monotonic() < deadline and not ready:
                assert process.poll() is None, log.read_text()
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{metrics_port}/readyz", timeout=2
                    ) as answer:
                        ready = answer.status == 200
                except urllib.error.HTTPError as error:
                    error.close()  # 503 until the API check has passed
                    time.sleep(0.2)
                except OSError:
                    time.sleep(0.2)
            assert ready
        finally:
            process.terminate()
            assert 0 == process.wait(timeout=30)
