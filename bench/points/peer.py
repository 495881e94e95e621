"""The Falco intake's comparison point: falcosidekick, the Falco project's own webhook receiver.

A capacity number means little alone, so the same Falco-repeat intake runs against falcosidekick
on the same machine in the same run: the same open-loop generator (`bench.load.loadgen`, CPU 1), the
same pass rule (p99 < 50 ms and < 0.1 % non-2xx, from `bench.load.capacity`), the server pinned to the
same core (CPU 0). falcosidekick runs with no outputs, so it only decodes, checks, counts and
answers each alert; zen-watcher's best passing rate over falcosidekick's is reported as a ratio.

falcosidekick is built from its Go module, pinned below, once into a cache outside the repository.
Its release tags carry no "v" (and it is past v1 without a /v2 module path), so Go modules know
it only by pseudo-versions: the pin is the release's commit, which the go command resolves. Its
go.mod has a `replace` directive, which `go install module@version` refuses, so it is built from
a scratch module that requires it and repeats that replacement. Where the module proxy refuses
the module (some proxies answer 403 for it), build it from a checkout of its repository at the
pinned commit instead, into the same cache folder, and this point finds it there:

    git clone https://github.com/falcosecurity/falcosidekick && cd falcosidekick
    git checkout b1f4acff5582673bb8a22df14e6f34914c48f8c8
    CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' \
        -o ~/.cache/zen-watcher/bench/falcosidekick-2.33.0/falcosidekick .

    python -m bench.points.peer [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.load.capacity import capacity
from bench.load.common import DAEMON_CPU
from tests.harness.controlplane.controlplane import free_port

FALCOSIDEKICK_MODULE = "github.com/falcosecurity/falcosidekick"
FALCOSIDEKICK_VERSION = "2.33.0"
FALCOSIDEKICK_COMMIT = "b1f4acff5582673bb8a22df14e6f34914c48f8c8"  # the 2.33.0 release
CACHE_ENV = "ZEN_BENCH_CACHE"  # where built peers are kept; default ~/.cache/zen-watcher/bench
# The intake ladder, continued upwards: a compiled receiver may pass every rate zen-watcher fails.
RATES: list[float] = [2000, 5000, 8000, 10000, 12000, 15000, 18000, 22000, 26000, 30000, 35000]
READY_TIMEOUT = 30.0
# A failing point whose server used less of its core than this was limited elsewhere: by the
# load generator or by other work on the machine, so the peer's best is then a lower bound.
SERVER_BOUND_CORES = 0.8


class PeerError(RuntimeError):
    """The comparison point could not be built or started; the message says why."""


@dataclass
class Peer:
    """A running falcosidekick, offering what `bench.load.capacity.load_point` reads of its target:
    `webhook_port`, and `process` for the server's CPU (taskset execs it, so the pid is its own).
    """

    webhook_port: int
    process: subprocess.Popen[bytes]
    log_path: Path


def cache_root() -> Path:
    """ZEN_BENCH_CACHE, else $XDG_CACHE_HOME (or ~/.cache) / zen-watcher / bench."""
    if override := os.environ.get(CACHE_ENV):
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zen-watcher" / "bench"


def falcosidekick_dir() -> Path:
    return cache_root() / f"falcosidekick-{FALCOSIDEKICK_VERSION}"


def build_falcosidekick() -> Path:
    """The pinned falcosidekick binary: from the cache, else built from its Go module.

    Beside it, build.json records the resolved module version and how long the cold build took.
    Raises PeerError when the module cannot be fetched or does not build.
    """
    out = falcosidekick_dir()
    binary = out / "falcosidekick"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    print(
        f"building falcosidekick {FALCOSIDEKICK_VERSION} from {FALCOSIDEKICK_MODULE} into {out}",
        file=sys.stderr,
        flush=True,
    )
    started = time.perf_counter()
    info = build_go_main(FALCOSIDEKICK_MODULE, FALCOSIDEKICK_COMMIT, binary)
    info["release"] = FALCOSIDEKICK_VERSION
    info["build_seconds"] = round(time.perf_counter() - started, 1)
    (out / "build.json").write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2))
    return binary


def build_go_main(module: str, query: str, binary: Path) -> dict[str, Any]:
    """Build the main package at the root of `module@query` to `binary`.

    As `go install module@version` would, but from a scratch main module that requires it and
    repeats its go.mod's module replacements (replacements by a folder of its own repository
    cannot apply outside it and are left out), so its build list is the one it pins.
    """
    go = shutil.which("go")
    if go is None:
        raise PeerError(f"the Go toolchain (go) is not on PATH; it is needed to build {module}")
    goflags = f"{os.environ.get('GOFLAGS') or '-buildvcs=false'} -mod=mod"
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": goflags}
    with tempfile.TemporaryDirectory(prefix="zen-bench-build-") as scratch:

        def go_run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [go, *args],
                cwd=scratch,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout,
            )

        def go_ok(*args: str, timeout: float = 900) -> str:
            done = go_run(*args, timeout=timeout)
            if done.returncode != 0:
                output = (done.stderr or done.stdout).strip()[-4000:]
                raise PeerError(f"`go {' '.join(args)}` failed building {module}:\n{output}")
            return done.stdout

        download = go_run("mod", "download", "-json", f"{module}@{query}")
        fetched: dict[str, Any] = {}
        with contextlib.suppress(orjson.JSONDecodeError):
            fetched = orjson.loads(download.stdout or "{}")
        if download.returncode != 0 or "GoMod" not in fetched:
            reason = fetched.get("Error") or download.stderr.strip()[-2000:] or "no output"
            raise PeerError(f"could not fetch {module}@{query} from the Go module proxy: {reason}")
        version: str = fetched["Version"]
        go_ok("mod", "init", "bench.local/peer")
        upstream = orjson.loads(go_ok("mod", "edit", "-json", fetched["GoMod"]))
        for replace in upstream.get("Replace") or []:
            old, new = replace["Old"], replace["New"]
            if not new.get("Version"):
                continue
            old_spec = old["Path"] + (f"@{old['Version']}" if old.get("Version") else "")
            go_ok("mod", "edit", f"-replace={old_spec}={new['Path']}@{new['Version']}")
        go_ok("get", f"{module}@{version}")
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_name(binary.name + ".partial")
        try:
            go_ok(
                "build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), module, timeout=3600
            )
        except PeerError:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(binary)
    return {"module": module, "version": version, "sum": fetched.get("Sum")}


def build_info(binary: Path) -> dict[str, Any]:
    """What build_falcosidekick recorded beside `binary`, or {} if nothing was."""
    with contextlib.suppress(OSError, orjson.JSONDecodeError):
        info: dict[str, Any] = orjson.loads((binary.parent / "build.json").read_bytes())
        return info
    return {}


@contextlib.contextmanager
def falcosidekick(binary: Path, *, ready_timeout: float = READY_TIMEOUT) -> Iterator[Peer]:
    """falcosidekick pinned to DAEMON_CPU on a free loopback port, no outputs, stopped afterwards.

    Its configuration comes from the environment alone, and the environment is built from
    nothing, so no variable of the caller's can switch an output on. Its log goes with its
    temporary folder; an error while starting quotes the log's tail.
    """
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="zen-bench-peer-"))
    log_path = workdir / "falcosidekick.log"
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(workdir),
        "LISTENADDRESS": "127.0.0.1",
        "LISTENPORT": str(port),
        "DEBUG": "false",
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["taskset", "-c", DAEMON_CPU, str(binary)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    peer = Peer(webhook_port=port, process=process, log_path=log_path)
    try:
        wait_ready(peer, timeout=ready_timeout)
        yield peer
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def wait_ready(peer: Peer, *, timeout: float) -> None:
    """Until GET /ping answers 200; then check the log says no output is enabled."""
    deadline = time.monotonic() + timeout
    while True:
        if peer.process.poll() is not None:
            raise PeerError(
                f"falcosidekick exited with {peer.process.returncode}:\n{log_tail(peer.log_path)}"
            )
        if ping(peer.webhook_port):
            break
        if time.monotonic() > deadline:
            raise PeerError(
                f"falcosidekick not ready in {timeout:.0f} s:\n{log_tail(peer.log_path)}"
            )
        time.sleep(0.1)
    for line in peer.log_path.read_text(errors="replace").splitlines():
        if "Enabled Outputs" in line and not line.rstrip().endswith("[]"):
            raise PeerError(f"falcosidekick started with outputs enabled: {line.strip()}")


def ping(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def log_tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def run_peer(*, quick: bool, rates: list[float] | None = None) -> dict[str, Any]:
    """falcosidekick's Falco-repeat capacity, found the way `bench.points.intake` finds zen-watcher's.

    `best` is None when not even the lowest rate passed. Unless `limit` is "server" (the failing
    point used at least SERVER_BOUND_CORES of falcosidekick's core), `best` is a lower bound and
    a ratio against it an upper bound.
    """
    started = time.perf_counter()
    binary = build_falcosidekick()
    build_seconds = round(time.perf_counter() - started, 1)
    info = build_info(binary)
    duration = 5.0 if quick else 10.0
    print(
        f"  falcosidekick {FALCOSIDEKICK_VERSION}, no outputs, pinned to CPU {DAEMON_CPU}:",
        flush=True,
    )
    with falcosidekick(binary) as peer:
        result = capacity(
            peer,
            kind="falco-repeat",
            rates=RATES if rates is None else rates,
            duration=duration,
            path="/",  # where Falco's http_output posts to falcosidekick
        )
    points: list[dict[str, Any]] = result["points"]
    for point in points:
        if "server_cpu_us_per_event" in point:
            used = point["server_cpu_us_per_event"] * point["events_per_second"] / 1e6
            point["server_cores"] = round(used, 2)
    return {
        "name": "falcosidekick",
        "version": FALCOSIDEKICK_VERSION,
        "module": f"{FALCOSIDEKICK_MODULE}@{info.get('version') or FALCOSIDEKICK_COMMIT}",
        "build_seconds": build_seconds,
        "cold_build_seconds": info.get("build_seconds"),
        "kind": result["kind"],
        "best": result["best"],
        "limit": limit(points),
        "points": points,
    }


def limit(points: list[dict[str, Any]]) -> str:
    """What stopped the step-up: "server", "elsewhere", "unknown", or "none" (every rate passed)."""
    if not points or points[-1]["passed"]:
        return "none"
    cores = points[-1].get("server_cores")
    if cores is None:
        return "unknown"
    return "server" if cores >= SERVER_BOUND_CORES else "elsewhere"


def ratio(zen_falco_repeats: dict[str, Any], peer: dict[str, Any]) -> float | None:
    """zen-watcher's best passing Falco-repeat events/s over falcosidekick's; None if either has none.

    `zen_falco_repeats` is `run_intake(...)["falco_repeats"]`, `peer` is `run_peer(...)`.
    """
    zen_best, peer_best = zen_falco_repeats.get("best"), peer.get("best")
    if not zen_best or not peer_best or not peer_best["events_per_second"]:
        return None
    value: float = zen_best["events_per_second"] / peer_best["events_per_second"]
    return round(value, 3)


def table(result: dict[str, Any]) -> str:
    """Markdown: one row per rate, then the best passing rate and the build."""
    lines = [
        "| target req/s | achieved req/s | events/s | p50 ms | p99 ms | max ms | non-2xx "
        "| server CPU µs/event | server cores | passed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in result["points"]:
        saturated = " (loadgen saturated)" if p["loadgen_saturated"] else ""
        lines.append(
            f"| {p['target_rate']:,.0f} | {p['achieved_rps']:,.0f} | {p['events_per_second']:,.0f} "
            f"| {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['max_ms']:.1f} "
            f"| {p['non2xx_fraction']:.4f} | {p.get('server_cpu_us_per_event', float('nan')):.1f} "
            f"| {p.get('server_cores', float('nan')):.2f} | {'yes' if p['passed'] else 'no'}{saturated} |"
        )
    best = result["best"]
    lines.append("")
    if best is None:
        lines.append("Best passing rate: none passed.")
    else:
        bound = {
            "server": "",
            "none": " (every rate passed: a lower bound)",
            "elsewhere": " (the failing point left the server's core idle: a lower bound)",
        }.get(result["limit"], " (what limited it is unknown)")
        lines.append(
            f"Best passing rate: {best['events_per_second']:,.0f} events/s "
            f"at {best['target_rate']:,.0f} req/s target, p99 {best['p99_ms']:.1f} ms{bound}."
        )
    cold = result["cold_build_seconds"]
    lines.append(
        f"falcosidekick {result['version']} ({result['module']}); build this run "
        f"{result['build_seconds']:.1f} s" + (f", cold build {cold:.1f} s." if cold else ".")
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.points.peer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="5 s points instead of 10 s")
    parser.add_argument("--json", help="also write the raw result to this file")
    args = parser.parse_args()
    try:
        result = run_peer(quick=args.quick)
    except PeerError as error:
        print(f"falcosidekick comparison point unavailable: {error}", file=sys.stderr)
        return 1
    print(table(result))
    if args.json:
        output = Path(args.json)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
