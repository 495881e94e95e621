"""A one-node Kubernetes cluster on this machine, started by the tests and removed after them.

Control plane: etcd and kube-apiserver from tests/controlplane (same binaries, same certificates
and tokens), here with ServiceAccount admission on and the `kubernetes` Service pointing at the
node address, plus kube-controller-manager and kube-scheduler. Node: kubelet on Debian's
containerd and runc, pod network from Debian's CNI bridge plugin, and kube-proxy (iptables mode)
for Services: pods reach the API server through the `kubernetes` Service as in any cluster, and
the tests reach the webhook Service's ClusterIP from the host.

The parts' configuration is in configs.py, the machine-side helpers in host.py; the pause
image is made locally (see images.py).

`stop()` undoes everything `start()` did, in reverse, and keeps going when a step fails:
processes (each in its own process group) and containers, kube-proxy's and the kubelet's
iptables chains, mounts under the working folder (pod volumes, rootfs, network namespaces),
the bridge and the node address, sysctls, and the state folders (the logs stay).

One run per machine: the run holds a claim (host.MachineClaim) that names its working folder
until `stop()` has undone everything. A run that was killed before that leaves its folder
named, and the next run undoes the leftovers (the same steps) before it starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.cluster import configs, host
from tests.cluster.configs import BRIDGE, GUARD_CHAIN, NODE_IP, NODE_NAME, SERVICE_CIDR
from tests.cluster.host import NodeError
from tests.cluster.images import BuiltImage
from tests.harness.controlplane import controlplane

READY_TIMEOUT = 180.0


def build_node_binaries() -> Path:
    """Build (or find in the cache) kube-controller-manager, kube-scheduler, kubelet, kube-proxy."""
    result = subprocess.run(
        ["bash", str(Path(__file__).with_name("build.sh"))],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise NodeError(f"node binaries build failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class Node:
    """Everything of the cluster under `workdir`; `start()` then `stop()` (always)."""

    workdir: Path
    control_bin: Path  # kube-apiserver, kubectl, etcd
    node_bin: Path  # kube-controller-manager, kube-scheduler, kubelet, kube-proxy
    images: list[BuiltImage]
    extra_apiserver_args: tuple[str, ...] = ()
    control: controlplane.ControlPlane | None = None
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _netns_before: set[str] = field(default_factory=set)
    _sysctls_before: dict[str, str] = field(default_factory=dict)
    _owner: bool = False
    _claim: host.MachineClaim = field(default_factory=host.MachineClaim)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def kubectl_path(self) -> Path:
        return self.control_bin / "kubectl"

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    def kubeconfig(self) -> Path:
        if self.control is None:
            raise NodeError("the node has not been started")
        return self.control.kubeconfig("admin")

    def log_file(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    # -- start ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start every part and wait for the node to be Ready."""
        started = time.monotonic()
        _preflight()
        left = self._claim.acquire()  # refuses while another run holds the machine
        if left is not None:
            self._reclaim(left)
        _check_node_address_free()
        self._claim.record(self.workdir)
        self._owner = True  # from here on, the machine's cluster state is this node's to undo
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self._netns_before = host.netns_names()
        self._network_up()
        self.control = controlplane.ControlPlane(
            self.workdir / "controlplane",
            self.control_bin,
            extra_apiserver_args=(
                # Pods reach the API server at the node address, through the `kubernetes`
                # Service (10.96.0.1, in the serving certificate); tests use 127.0.0.1.
                "--bind-address=0.0.0.0",
                f"--advertise-address={NODE_IP}",
                "--endpoint-reconciler-type=lease",
                # The controller-manager runs here, so pods get service-account tokens.
                "--disable-admission-plugins=",
                # `kubectl exec/logs` reach the kubelet at the node address (no DNS here).
                "--kubelet-preferred-address-types=InternalIP",
                *self.extra_apiserver_args,
            ),
        )
        self._guard_apiserver_port(self.control.port)
        self.control.start()
        self._start_controllers()
        self._start_containerd()
        self._import_images()
        self._start_kubelet()
        self._start_kube_proxy()
        self._wait_node_ready()
        self.timings["cluster_start_seconds"] = time.monotonic() - started

    def _network_up(self) -> None:
        for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
            path = Path("/proc/sys") / key
            if not path.exists():  # Services between pods on the bridge need br_netfilter
                raise NodeError(f"{path} is missing: modprobe br_netfilter")
            self._sysctls_before[key] = path.read_text().strip()
            path.write_text("1")
        # Not a dummy interface: these kernels have no such driver. Pods reach an address on
        # `lo` like any other local address of the node.
        host.run(["ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo"])

    def _guard_apiserver_port(self, port: int) -> None:
        """The API server listens on every address (pods reach it at the node address); only
        loopback and the pod bridge may connect."""
        host.run(["iptables", "-N", GUARD_CHAIN])
        host.run(["iptables", "-A", GUARD_CHAIN, "-i", "lo", "-j", "RETURN"])
        host.run(["iptables", "-A", GUARD_CHAIN, "-i", BRIDGE, "-j", "RETURN"])
        host.run(["iptables", "-A", GUARD_CHAIN, "-j", "DROP"])
        host.run(["iptables", "-I", "INPUT", "-p", "tcp", "--dport", str(port), "-j", GUARD_CHAIN])

    def _start_controllers(self) -> None:
        assert self.control is not None
        pki = self.control.workdir / "pki"
        kubeconfig = str(self.kubeconfig())
        self._spawn(
            "kube-controller-manager",
            [
                str(self.node_bin / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={controlplane.free_port()}",
                "--use-service-account-credentials=false",
                # Fast enough that the tests need not wait on controller resyncs.
                "--node-monitor-grace-period=20s",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.node_bin / "kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={controlplane.free_port()}",
            ],
        )

    def _start_containerd(self) -> None:
        base = self.workdir / "containerd"
        cni = self.workdir / "cni"
        (cni / "net.d").mkdir(parents=True, exist_ok=True)
        (cni / "net.d" / "10-zen.conflist").write_text(json.dumps(configs.cni_config(cni / "ipam")))
        config = base / "config.toml"
        base.mkdir(parents=True, exist_ok=True)
        config.write_text(configs.containerd_config(base, cni / "net.d"))
        self._spawn("containerd", ["containerd", f"--config={config}"])
        host.wait_for_process(
            lambda: self._ctr("version", check=False).returncode == 0,
            "containerd",
            self.log_file("containerd"),
            self._processes["containerd"],
        )

    def _import_images(self) -> None:
        started = time.monotonic()
        for image in self.images:
            self._ctr("images", "import", "--no-unpack", str(image.archive))
        self.timings["image_import_seconds"] = time.monotonic() - started

    def _start_kubelet(self) -> None:
        root = self.workdir / "kubelet"
        root.mkdir(parents=True, exist_ok=True)
        config = root / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                configs.kubelet_config(
                    socket=self.containerd_socket, pod_logs=self.workdir / "pod-logs"
                )
            )
        )
        self._spawn(
            "kubelet",
            [
                str(self.node_bin / "kubelet"),
                f"--config={config}",
                f"--kubeconfig={self.kubeconfig()}",
                f"--root-dir={root}",
                f"--cert-dir={root / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "--v=1",
            ],
        )

    def _start_kube_proxy(self) -> None:
        config = self.workdir / "kube-proxy.yaml"
        config.write_text(yaml.safe_dump(configs.kube_proxy_config(kubeconfig=self.kubeconfig())))
        self._spawn("kube-proxy", [str(self.node_bin / "kube-proxy"), f"--config={config}"])

    def _wait_node_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise NodeError(f"{name} exited; {self.log_file(name)}:\n{self.tail(name)}")
            result = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
            if result.returncode == 0:
                conditions = json.loads(result.stdout)["status"].get("conditions", [])
                if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    return
            time.sleep(1.0)
        raise NodeError(f"node not Ready in {READY_TIMEOUT}s:\n{self.tail('kubelet')}")

    # -- use -----------------------------------------------------------------------------

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the cluster admin."""
        result = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig()}", *args],
            capture_output=True,
            text=True,
            input=stdin,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise NodeError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}"
            )
        return result

    def kill_container(self, namespace: str, pod: str) -> None:
        """SIGKILL the pod's (first) container from the node, as an OOM kill or a crash would
        end it: no SIGTERM, no shutdown code runs. The kubelet then restarts it."""
        status = self.kubectl(
            "get",
            "pod",
            pod,
            "-n",
            namespace,
            "-o",
            "jsonpath={.status.containerStatuses[0].containerID}",
        ).stdout.strip()
        container = status.removeprefix("containerd://")
        if not container:
            raise NodeError(f"pod {namespace}/{pod} has no running container")
        self._ctr("tasks", "kill", "--signal", "SIGKILL", container)

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_file(name)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["ctr", f"--address={self.containerd_socket}", "--namespace=k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result

    def _spawn(self, name: str, args: list[str]) -> None:
        with self.log_file(name).open("ab") as log:
            self._processes[name] = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Undo `start()`; return what could not be undone (empty when all went)."""
        if not self._owner:  # refused before changing anything: what is there is not ours
            return []
        problems = self._undo()
        # With something left over, the claim keeps naming this folder: the next run undoes it.
        self._claim.release(clean=not problems)
        return problems

    def _undo(self) -> list[str]:
        problems: list[str] = []
        steps: list[tuple[str, Callable[[], None]]] = [
            ("kubelet", lambda: self._stop_process("kubelet")),
            ("containers", self._kill_containers),
            ("kube-proxy", self._stop_kube_proxy),
            ("containerd", lambda: self._stop_process("containerd")),
            ("scheduler", lambda: self._stop_process("kube-scheduler")),
            ("controller-manager", lambda: self._stop_process("kube-controller-manager")),
            ("control plane", self._stop_control_plane),
            ("mounts", self._unmount_all),
            ("netns", self._remove_netns),
            ("network", self._network_down),
            ("state", self._remove_state),
        ]
        for what, step in steps:
            try:
                step()
            except Exception as error:
                problems.append(f"{what}: {error}")
        return problems

    def _reclaim(self, left: Path) -> None:
        """Undo what a killed run, working in `left`, left on the machine: its processes (no
        run holds the claim, so none is alive by design, but a killed pytest leaves its
        children), then the same steps as `stop()`."""
        for pid in host.pids_with_argument(str(left)) - {os.getpid()}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        leftover = Node(
            workdir=left,
            control_bin=self.control_bin,
            node_bin=self.node_bin,
            images=[],
            _netns_before=host.netns_names(),  # which names were the killed run's is not known
            _owner=True,
            _claim=self._claim,  # held by this run: the leftover's stop must not release it
        )
        problems = leftover._undo()
        if problems:
            raise NodeError(f"could not undo what a killed run left in {left}: {problems}")

    def _stop_process(self, name: str) -> None:
        process = self._processes.pop(name, None)
        if process is not None:
            host.kill_group(process)

    def _kill_containers(self) -> None:
        """SIGKILL every container process and the runtime shims of this containerd."""
        pids: set[int] = set()
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            kubepods = hierarchy / "kubepods"
            if kubepods.is_dir():
                for procs in kubepods.rglob("cgroup.procs"):
                    with contextlib.suppress(OSError, ValueError):
                        pids.update(int(line) for line in procs.read_text().split())
        pids.update(host.pids_with_argument(str(self.containerd_socket)) - {os.getpid()})
        if "containerd" in self._processes:
            pids.discard(self._processes["containerd"].pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            kubepods = hierarchy / "kubepods"
            if kubepods.is_dir():
                for directory in sorted(kubepods.rglob("*"), key=lambda p: -len(p.parts)):
                    if directory.is_dir():
                        with contextlib.suppress(OSError):
                            directory.rmdir()
                with contextlib.suppress(OSError):
                    kubepods.rmdir()

    def _stop_kube_proxy(self) -> None:
        self._stop_process("kube-proxy")
        # Removes the KUBE-* chains and rules it installed. The folder may be gone: a killed
        # run's, removed since by pytest's rotation of its temporary folders.
        log_path = self.log_file("kube-proxy-cleanup")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            subprocess.run(
                [str(self.node_bin / "kube-proxy"), "--cleanup"],
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=60,
            )

    def _stop_control_plane(self) -> None:
        if self.control is not None:
            self.control.stop()

    def _unmount_all(self) -> None:
        prefix = str(self.workdir.resolve())
        for mount in sorted(host.mount_points(), key=len, reverse=True):
            if mount == prefix or mount.startswith(prefix + "/"):
                subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        left = [m for m in host.mount_points() if m.startswith(prefix + "/")]
        if left:
            raise NodeError(f"still mounted: {left}")

    def _remove_state(self) -> None:
        """The runtime's, kubelet's and etcd's data (images unpacked, pod volumes): gone. The
        logs stay for a failing test's reader; they are small."""
        if any(m.startswith(str(self.workdir.resolve()) + "/") for m in host.mount_points()):
            raise NodeError("mounts left under the working folder; its data is kept")
        for name in ("containerd", "kubelet", "cni", "controlplane/etcd-data"):
            shutil.rmtree(self.workdir / name, ignore_errors=True)

    def _remove_netns(self) -> None:
        for name in host.netns_names() - self._netns_before:
            path = host.NETNS_DIR / name
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
            path.unlink(missing_ok=True)

    def _network_down(self) -> None:
        # The kubelet's KUBE-FIREWALL chain (the `--cleanup` of kube-proxy leaves it).
        for tool in ("iptables", "ip6tables"):
            for parent in ("INPUT", "OUTPUT"):
                while host.quiet([tool, "-D", parent, "-j", "KUBE-FIREWALL"]) == 0:
                    pass
            host.quiet([tool, "-F", "KUBE-FIREWALL"])
            host.quiet([tool, "-X", "KUBE-FIREWALL"])
        # Every INPUT rule into the guard chain (a killed run's port is not this run's).
        rules = subprocess.run(
            ["iptables", "-S", "INPUT"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        for rule in rules:
            words = rule.split()
            if words[:2] == ["-A", "INPUT"] and words[-2:] == ["-j", GUARD_CHAIN]:
                host.quiet(["iptables", "-D", *words[1:]])
        host.quiet(["iptables", "-F", GUARD_CHAIN])
        host.quiet(["iptables", "-X", GUARD_CHAIN])
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
        subprocess.run(
            ["ip", "addr", "del", f"{NODE_IP}/32", "dev", "lo"], capture_output=True, check=False
        )
        for key, value in self._sysctls_before.items():
            (Path("/proc/sys") / key).write_text(value)


def _preflight() -> None:
    """Fail early, naming what is missing, rather than deep inside a component's log."""
    if os.geteuid() != 0:
        raise NodeError("the cluster tests run as root (kubelet, containerd, network setup)")
    missing = [
        tool
        for tool in ("containerd", "ctr", "runc", "iptables", "ip", "buildah", "mmdebstrap")
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode
    ]
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("containernetworking-plugins (/usr/lib/cni/bridge)")
    if missing:
        raise NodeError(f"missing: {', '.join(missing)}; see tests/cluster/install.sh")


def _check_node_address_free() -> None:
    """After the claim and any reclaim: the node address on `lo` now is none of ours."""
    addresses = subprocess.run(
        ["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=False
    ).stdout
    if f" {NODE_IP}/" in addresses:
        raise NodeError(
            f"{NODE_IP} is on lo, left by something no cluster test run recorded; after stopping"
            f" its kubelet, kube-proxy and containerd: ip addr del {NODE_IP}/32 dev lo"
        )
