"""The machine claim: one cluster run at a time, and a killed run's folder named to the next.

Real processes and a real `flock`: a child takes the claim and is SIGKILLed, as the end of a
CI job or an out-of-memory kill would end a test run (no cleanup code runs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.host import MachineClaim, NodeError

ROOT = Path(__file__).resolve().parents[2]

_HOLDER = """
import sys, time
from pathlib import Path
from tests.cluster.host import MachineClaim
claim = MachineClaim(Path(sys.argv[1]))
claim.acquire()
claim.record(Path(sys.argv[2]))
print("held", flush=True)
time.sleep(600)
"""


def _holder(claim_file: Path, workdir: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(claim_file), str(workdir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_live_run_refuses_the_next_and_a_killed_one_names_its_folder(tmp_path: Path) -> None:
    claim_file, workdir = tmp_path / "claim", tmp_path / "node"
    holder = _holder(claim_file, workdir)
    try:
        with pytest.raises(NodeError, match="another cluster test runs"):
            MachineClaim(claim_file).acquire()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    claim = MachineClaim(claim_file)
    assert claim.acquire() == workdir.resolve()
    claim.release(clean=False)  # the leftovers were not all undone: still named
    claim = MachineClaim(claim_file)
    assert claim.acquire() == workdir.resolve()
    claim.release(clean=True)
    claim = MachineClaim(claim_file)
    assert claim.acquire() is None
    claim.release(clean=True)


def test_a_clean_stop_leaves_nothing_named(tmp_path: Path) -> None:
    claim_file = tmp_path / "claim"
    claim = MachineClaim(claim_file)
    assert claim.acquire() is None
    claim.record(tmp_path / "node")
    claim.release(clean=True)
    claim = MachineClaim(claim_file)
    assert claim.acquire() is None
    claim.release(clean=True)
