"""Upstream files the tests need from Go modules (CRDs), fetched through the Go module proxy
into the Go module cache, never committed here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import orjson


def module_dir(module: str, workdir: Path) -> Path:
    """The folder of `module` (`path@version`) in the Go module cache, downloaded if missing."""
    go = shutil.which("go")
    assert go is not None, "Go is needed (as for the control plane build) to fetch the CRDs"
    result = subprocess.run(
        [go, "mod", "download", "-json", module],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert 0 == result.returncode, result.stdout + result.stderr
    return Path(orjson.loads(result.stdout)["Dir"])
