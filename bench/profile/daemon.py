"""Where the daemon's time goes under load: py-spy samples the real daemon process while the
open-loop generator drives one point, then prints the functions with the largest share of
samples (inclusive and self), beside the point's latency and the daemon's CPU per event.

    python -m bench.profile.daemon [--kind falco-repeat|falco-unique|audit|audit-mix] [--rate N]

Needs py-spy (`pip install py-spy`; the bench tox environment has it) and permission to read
the daemon's memory (same user, ptrace allowed).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.load import capacity, common

SECONDS = 6


def frame_name(frame: str) -> str:
    """`function (path/file.py:line)` -> `function file.py`."""
    function, _, where = frame.partition(" (")
    return f"{function} {where.split(':')[0].rsplit('/', 1)[-1]}".strip()


def summarise(raw: Path, top: int) -> str:
    """Inclusive and self shares of py-spy's raw (collapsed) stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = [frame_name(frame) for frame in stack.split(";")]
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    lines = [f"{total} samples", "--- inclusive ---"]
    lines += [f"{value / total:6.1%} {name}" for name, value in inclusive.most_common(top)]
    lines += ["--- self ---"]
    lines += [f"{value / total:6.1%} {name}" for name, value in own.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile.daemon", description=__doc__)
    parser.add_argument(
        "--kind",
        default="falco-repeat",
        choices=["falco-repeat", "falco-unique", "audit", "audit-mix"],
    )
    parser.add_argument("--rate", type=float, default=3000, help="requests per second")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        sys.exit("py-spy is not installed: pip install py-spy")
    path = "/falco/webhook" if args.kind.startswith("falco") else "/audit/webhook"
    raw = Path(tempfile.mkdtemp(prefix="zen-profile-")) / "stacks.txt"
    with (
        common.control_plane() as running,
        common.daemon(
            running,
            "bench-profile",
            WEBHOOK_AUTH_TOKEN=common.TOKEN,
            QUEUE_SIZE="100000",
        ) as target,
    ):
        assert target.process is not None
        command = [spy, "record", "-p", str(target.process.pid), "-d", str(SECONDS)]
        command += ["-r", "200", "-f", "raw", "-o", str(raw), "--nonblocking"]
        recorder = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        point = capacity.load_point(
            target, kind=args.kind, rate=args.rate, duration=SECONDS + 1, path=path
        )
        recorder.wait()
    print(
        f"{args.kind} at {args.rate:.0f} req/s: p99 {point['p99_ms']} ms, "
        f"{point['events_per_second']:.0f} events/s, "
        f"server CPU {point['server_cpu_us_per_event']} µs/event"
    )
    print(summarise(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
