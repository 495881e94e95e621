"""A real Kubernetes control plane on loopback: etcd and kube-apiserver built from Go modules.

`build.sh` beside this file builds the binaries once into a cache keyed by version. A
`ControlPlane` starts etcd and kube-apiserver on free loopback ports with TLS, a
service-account key, static tokens for an `admin` (system:masters) and a `zen-watcher` user
(nothing but what RBAC grants it), writes a kubeconfig per user, and offers what later tests
need: restart kube-apiserver on the same etcd data, compact etcd, read the server's version.
"""

from __future__ import annotations

import base64
import contextlib
import random
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import trustme
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent
ADMIN_TOKEN = "zen-admin-token"  # static test tokens, loopback only
WATCHER_TOKEN = "zen-watcher-token"
WATCHER_USER = "zen-watcher"
START_TIMEOUT = 90.0


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started; the message names the log to read."""


def build_binaries() -> Path:
    """Build (or find in the cache) kube-apiserver, kubectl and etcd; return their folder."""
    result = subprocess.run(
        ["bash", str(HERE / "build.sh")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ControlPlaneError(f"control plane build failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


# Ports handed out for servers come from below the kernel's ephemeral range: outgoing
# connections (to the API server, to etcd) take their local ports from that range, and one of
# them can take a port chosen there before the server that was given it binds it.
_SERVER_PORTS_FROM = 10000
_ports = random.Random()


def free_port() -> int:
    """A TCP port nobody listens on right now, outside the ephemeral range where it can be."""
    low = _ephemeral_low()
    for _ in range(100):
        port = _ports.randrange(_SERVER_PORTS_FROM, low) if low > _SERVER_PORTS_FROM else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))  # noqa: S104 - as the daemon binds it
            except OSError:
                continue
            chosen: int = sock.getsockname()[1]
            return chosen
    raise OSError("no free TCP port below the ephemeral range")


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; IANA's 49152 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


@dataclass
class ControlPlane:
    """etcd + kube-apiserver in `workdir`; `start()` then `stop()`."""

    workdir: Path
    bin_dir: Path
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    port: int = field(default_factory=free_port)
    extra_apiserver_args: tuple[str, ...] = ()  # a flag named here replaces the default's
    _etcd: subprocess.Popen[bytes] | None = None
    _apiserver: subprocess.Popen[bytes] | None = None
    ca: trustme.CA | None = None  # issues the serving and client certificates

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    def kubeconfig(self, user: str = "admin") -> Path:
        """Path of the kubeconfig for `admin` or `zen-watcher`."""
        return self.workdir / f"kubeconfig-{user}"

    def log_file(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start(self) -> None:
        """Write certificates and tokens, start etcd, then kube-apiserver, and wait for both."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_pki()
        self._write_tokens()
        self._write_kubeconfigs()
        self._start_etcd()
        self.start_apiserver()

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd (SIGTERM, then SIGKILL after a grace)."""
        self.stop_apiserver()
        _terminate(self._etcd)
        self._etcd = None

    def start_apiserver(self) -> None:
        """Start kube-apiserver against the running etcd and wait until /readyz is ok."""
        pki = self.workdir / "pki"
        args = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/24",
            "--allow-privileged=true",
            # The kubernetes Service endpoint may not be a loopback address, and nothing here
            # needs it: no pod talks to this API server through the Service.
            "--endpoint-reconciler-type=none",
            # No controller-manager runs here, so nothing would create service-account tokens.
            "--disable-admission-plugins=ServiceAccount",
            f"--cert-dir={pki}",
        ]
        replaced = {arg.split("=", 1)[0] for arg in self.extra_apiserver_args}
        args = [arg for arg in args if arg.split("=", 1)[0] not in replaced]
        args += self.extra_apiserver_args
        with self.log_file("kube-apiserver").open("ab") as log:
            self._apiserver = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready(self._apiserver, "kube-apiserver")

    def stop_apiserver(self) -> None:
        _terminate(self._apiserver)
        self._apiserver = None

    def signal_apiserver(self, signum: signal.Signals) -> None:
        """Send `signum` to kube-apiserver: SIGSTOP hangs every connection, SIGCONT resumes."""
        if self._apiserver is None:
            raise ControlPlaneError("kube-apiserver is not running")
        self._apiserver.send_signal(signum)

    def restart_apiserver(self, *, downtime: float = 0.0) -> None:
        """Stop kube-apiserver, wait `downtime` seconds, start it again on the same port and data."""
        self.stop_apiserver()
        time.sleep(downtime)
        self.start_apiserver()

    def compact_etcd(self) -> int:
        """Compact etcd at its current revision (so older resourceVersions answer 410 Gone)."""
        revision = int(self._etcd_call("/v3/kv/range", {"key": _b64("/")})["header"]["revision"])
        self._etcd_call("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def etcd_bytes_in_use(self) -> int:
        """etcd's database bytes in use after compacting history and defragmenting: what the
        stored objects cost against its quota."""
        self.compact_etcd()
        self._etcd_call("/v3/maintenance/defragment", {})
        return int(self._etcd_call("/v3/maintenance/status", {})["dbSizeInUse"])

    def server_version(self) -> dict[str, Any]:
        """The server's /version document."""
        return self.get_json("/version")

    def get_json(self, path: str) -> dict[str, Any]:
        """GET `path` as the admin user."""
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            document: dict[str, Any] = orjson.loads(response.read())
            return document

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of each server log, for a failing test's report."""
        parts = []
        for name in ("etcd", "kube-apiserver"):
            path = self.log_file(name)
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} (last {lines} lines) ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def _start_etcd(self) -> None:
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        args = [
            str(self.bin_dir / "etcd"),
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",  # test data on loopback; durability is not under test
            "--log-level=warn",
        ]
        with self.log_file("etcd").open("ab") as log:
            self._etcd = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            _check_alive(self._etcd, "etcd", self.log_file("etcd"))
            with contextlib.suppress(OSError):
                self._etcd_call("/v3/kv/range", {"key": _b64("/")})
                return
            time.sleep(0.1)
        raise ControlPlaneError(f"etcd did not start; see {self.log_file('etcd')}")

    def _wait_ready(self, process: subprocess.Popen[bytes], name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        context = ssl.create_default_context(cafile=str(self.ca_file))
        while time.monotonic() < deadline:
            _check_alive(process, name, self.log_file(name))
            request = urllib.request.Request(
                self.url + "/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(request, context=context, timeout=2) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.2)
        raise ControlPlaneError(f"{name} not ready in {START_TIMEOUT}s; see {self.log_file(name)}")

    def _etcd_call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.etcd_url + path, data=orjson.dumps(body), method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer: dict[str, Any] = orjson.loads(response.read())
            return answer

    def _write_pki(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        ca = self.ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost", "kubernetes", "10.96.0.1")
        ca.cert_pem.write_to_path(str(pki / "ca.crt"))
        server.private_key_pem.write_to_path(str(pki / "apiserver.key"))
        server.cert_chain_pems[0].write_to_path(str(pki / "apiserver.crt"))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (pki / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (pki / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def issue_client_certificate(self, user: str, group: str = "") -> tuple[bytes, bytes]:
        """PEM certificate and key the API server accepts for `user` (CN) in `group` (O)."""
        if self.ca is None:
            raise ControlPlaneError("the control plane has not been started")
        leaf = self.ca.issue_cert(user, common_name=user, organization_name=group or None)
        return leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes()

    def _write_tokens(self) -> None:
        (self.workdir / "tokens.csv").write_text(
            f'{ADMIN_TOKEN},admin,admin-uid,"system:masters"\n'
            f"{WATCHER_TOKEN},{WATCHER_USER},{WATCHER_USER}-uid\n"
        )

    def _write_kubeconfigs(self) -> None:
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        for user, token in (("admin", ADMIN_TOKEN), (WATCHER_USER, WATCHER_TOKEN)):
            config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {"server": self.url, "certificate-authority-data": ca_data},
                    }
                ],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [{"name": user, "context": {"cluster": "local", "user": user}}],
                "current-context": user,
            }
            self.kubeconfig(user).write_text(yaml.safe_dump(config))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _check_alive(process: subprocess.Popen[bytes] | None, name: str, log: Path) -> None:
    if process is not None and process.poll() is not None:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise ControlPlaneError(f"{name} exited with {process.returncode}; {log}:\n{tail}")


def _terminate(process: subprocess.Popen[bytes] | None, grace: float = 15.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
