"""The README's main job: the demo runs from start to finish and shows every source."""

from __future__ import annotations

import subprocess
import sys

from tests.harness.paths import REPO_ROOT


class TestDemo:
    def test_demo_shows_observations_from_every_source(self) -> None:
        """`python -m tests.demo` exits 0 and prints Observations and the metrics summary."""
        result = subprocess.run(
            [sys.executable, "-m", "tests.demo"],
            cwd=REPO_ROOT,
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
