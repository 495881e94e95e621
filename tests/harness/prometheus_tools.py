"""Find `prometheus` and `promtool`, installing Debian's package when missing and allowed.

The dashboard and alert tests need both binaries. They are looked up on PATH (and in
`ZEN_PROMETHEUS_BIN`, a folder holding both, if set). When missing and running as root on a
Debian-like system, `apt-get install -y --no-install-recommends prometheus` provides them;
otherwise the caller gets one clear error naming what to install. Tests never skip for this.
`promtool(...)` runs the latter.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

APT_COMMAND = ("apt-get", "install", "-y", "--no-install-recommends", "prometheus")
INSTALL_TIMEOUT = 600


class PrometheusToolsError(RuntimeError):
    """`prometheus`/`promtool` are missing and could not be installed here."""


@dataclass(frozen=True, slots=True)
class PrometheusTools:
    """Absolute paths of the two binaries."""

    prometheus: Path
    promtool: Path


@functools.cache
def prometheus_tools() -> PrometheusTools:
    """Both binaries, installed on first use if needed (once per process)."""
    found = _find()
    if found is not None:
        return found
    _install()
    found = _find()
    if found is None:
        raise PrometheusToolsError(
            f"`{' '.join(APT_COMMAND)}` succeeded but prometheus/promtool are still not on PATH"
        )
    return found


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """`promtool` run with `args`; its exit code is the caller's to check."""
    return subprocess.run(
        [str(prometheus_tools().promtool), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _find() -> PrometheusTools | None:
    extra = os.environ.get("ZEN_PROMETHEUS_BIN", "")
    search = os.pathsep.join(part for part in (extra, os.environ.get("PATH", "")) if part)
    prometheus = shutil.which("prometheus", path=search)
    promtool = shutil.which("promtool", path=search)
    if prometheus is None or promtool is None:
        return None
    return PrometheusTools(prometheus=Path(prometheus), promtool=Path(promtool))


def _install() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PrometheusToolsError(
            "prometheus and promtool are needed by the dashboard/alert tests: install them "
            f"(Debian/Ubuntu: `sudo {' '.join(APT_COMMAND)}`, or put both binaries from "
            "https://prometheus.io/download/ on PATH or in ZEN_PROMETHEUS_BIN)"
        )
    result = _apt(APT_COMMAND)
    if result.returncode != 0:
        # A fresh machine may have no package lists yet: fetch them once and try again.
        _apt(("apt-get", "update", "-qq"))
        result = _apt(APT_COMMAND)
    if result.returncode != 0:
        raise PrometheusToolsError(
            f"`{' '.join(APT_COMMAND)}` failed ({result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )


def _apt(command: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=INSTALL_TIMEOUT,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
