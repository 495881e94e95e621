"""The container images the one-node cluster runs, built here without a registry or Docker.

- The Dockerfile's base (`python:3.11-slim-bookworm`) cannot be pulled, so a stand-in is made
  from Debian's packages with mmdebstrap (bookworm's Python 3.11 and pip) and tagged under the
  FROM name. It is not the official image; it offers what the Dockerfile uses of it.
- Our image is built from the repository's Dockerfile, unchanged, with `buildah bud`.
- The pause image (the pod sandbox) holds a tiny static Go program from `pause/`.

Each is written as a docker-archive tar into a cache keyed by what it was built from, so a
second run builds nothing; `ctr images import` then loads the tars into the node's runtime.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.harness.paths import REPO_ROOT

HERE = Path(__file__).resolve().parent
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"  # the Dockerfile's FROM
PAUSE_IMAGE = "localhost/zen-pause:1"
IMAGE_REPOSITORY = "ghcr.io/kube-zen/zen-watcher-py"  # what manifests/kustomization.yaml names
BASE_PACKAGES = ("python3", "python3-pip", "python-is-python3", "ca-certificates")
# The official image's pip installs into the system; Debian's refuses (PEP 668) unless the
# marker is gone. Docs and translations are dropped, as the slim image does.
BASE_RECIPE = (
    "mmdebstrap",
    "--variant=minbase",
    "--include=" + ",".join(BASE_PACKAGES),
    '--aptopt=APT::Install-Recommends "false"',
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    '--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
    "bookworm",
)
IMAGE_INPUTS = ("Dockerfile", "pyproject.toml", "README.md", "zenwatcher")


class ImageError(RuntimeError):
    """An image could not be built; the message names the log to read."""


def cache_root() -> Path:
    """Beside the control plane's binaries (same variables as tests/harness/controlplane/build.sh)."""
    explicit = os.environ.get("ZEN_CONTROLPLANE_CACHE")
    if explicit:
        return Path(explicit) / "images"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "zen-watcher" / "controlplane" / "images"


def image_tag() -> str:
    """Our image's tag: the package version, as the release workflow tags it."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return str(project["version"])


@dataclass(frozen=True)
class BuiltImage:
    name: str
    archive: Path  # docker-archive tar, importable with `ctr images import`
    build_seconds: float  # 0.0 when it came from the cache


@dataclass
class ImageBuilder:
    """Builds with buildah in its own storage under the cache; logs go to `log_dir`."""

    log_dir: Path

    @property
    def _storage(self) -> list[str]:
        root = cache_root() / "buildah"
        return ["--root", str(root / "storage"), "--runroot", str(root / "run")]

    def all(self) -> list[BuiltImage]:
        """The images the node imports: pause and ours (built on the base stand-in)."""
        return [self.pause(), self.ours()]

    def pause(self) -> BuiltImage:
        source = HERE / "pause"
        key = _digest([source / "main.go", source / "go.mod"])
        archive = cache_root() / f"pause-{key}.tar"
        return self._cached(PAUSE_IMAGE, archive, lambda: self._build_pause(source, archive))

    def base(self) -> BuiltImage:
        key = hashlib.sha256("\n".join(BASE_RECIPE).encode()).hexdigest()[:16]
        archive = cache_root() / f"base-python3.11-bookworm-{key}.tar"
        return self._cached(BASE_IMAGE, archive, lambda: self._build_base(archive))

    def ours(self) -> BuiltImage:
        base = self.base()
        inputs = [REPO_ROOT / name for name in IMAGE_INPUTS]
        key = _digest([base.archive, *inputs])
        name = f"{IMAGE_REPOSITORY}:{image_tag()}"
        archive = cache_root() / f"zen-watcher-py-{key}.tar"
        return self._cached(name, archive, lambda: self._build_ours(base, name, archive))

    def _cached(self, name: str, archive: Path, build: Callable[[], None]) -> BuiltImage:
        if archive.exists():
            return BuiltImage(name, archive, 0.0)
        archive.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        build()
        return BuiltImage(name, archive, time.monotonic() - started)

    def _build_pause(self, source: Path, archive: Path) -> None:
        work = cache_root() / "pause.partial"
        work.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CGO_ENABLED": "0"}
        self._run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(work / "pause"), "."],
            "pause-build",
            cwd=source,
            env=env,
        )
        self._from_files(PAUSE_IMAGE, work / "pause", "/pause", ["--entrypoint", '["/pause"]'])
        self._push(PAUSE_IMAGE, archive)
        shutil.rmtree(work)

    def _build_base(self, archive: Path) -> None:
        rootfs = cache_root() / "base-rootfs.tar"
        command = [*BASE_RECIPE, str(rootfs)]
        self._run(command, "base-mmdebstrap")
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        config = ["--env", f"PATH={path}", "--env", "LANG=C.UTF-8", "--cmd", "python3"]
        self._from_files(BASE_IMAGE, rootfs, "/", config)
        rootfs.unlink()
        self._push(BASE_IMAGE, archive)

    def _build_ours(self, base: BuiltImage, name: str, archive: Path) -> None:
        # The base must be in buildah's storage under the FROM name; load it from its archive
        # when the storage was emptied since it was made.
        if self._buildah("inspect", "--type", "image", BASE_IMAGE, check=False).returncode:
            self._buildah("pull", f"docker-archive:{base.archive}")
        self._run(
            [
                "buildah",
                *self._storage,
                "bud",
                "--isolation",
                "chroot",
                "--pull=never",
                "--layers=false",
                *_trust_host_cas(),
                "-f",
                str(REPO_ROOT / "Dockerfile"),
                "-t",
                name,
                str(REPO_ROOT),
            ],
            "image-build",
        )
        self._push(name, archive)
        # One build of ours is kept: the sources change often, and each image is ~270 MiB.
        for older in archive.parent.glob("zen-watcher-py-*.tar"):
            if older != archive:
                older.unlink()
        self._buildah("rmi", "--prune", check=False)

    def _from_files(self, name: str, source: Path, dest: str, config: list[str]) -> None:
        container = self._buildah("from", "scratch").stdout.strip()
        try:
            self._buildah("add", container, str(source), dest)
            self._buildah("config", *config, container)
            self._buildah("commit", "--rm", container, name)
        except ImageError:
            self._buildah("rm", container, check=False)
            raise

    def _push(self, name: str, archive: Path) -> None:
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        self._buildah("push", name, f"docker-archive:{partial}:{name}")
        partial.rename(archive)

    def _buildah(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["buildah", *self._storage, *args], capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise ImageError(f"buildah {' '.join(args)} failed: {result.stderr[-3000:]}")
        return result

    def _run(
        self,
        command: list[str],
        log_name: str,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{log_name}.log"
        with log.open("ab") as out:
            result = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env, check=False
            )
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise ImageError(f"{command[0]} failed ({result.returncode}); {log}:\n{tail}")


def _trust_host_cas() -> list[str]:
    """The build's pip fetches from PyPI; where the host reaches it through a TLS-inspecting
    proxy, the build's RUN steps see the host's CA bundle (mounted, not copied into the image).
    Debian's pip, which the stand-in base has, reads the system bundle."""
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    return ["--volume", f"{bundle}:{bundle}:ro"] if bundle.is_file() else []


def _digest(paths: list[Path]) -> str:
    """A hash of the files under `paths` (names and contents), ignoring bytecode caches."""
    digest = hashlib.sha256()
    for root in paths:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                name = path.relative_to(root.parent) if root.is_dir() else Path(path.name)
                digest.update(str(name).encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]
