"""What the node's parts are told: containerd, CNI, kubelet and kube-proxy configuration.

The settings are what this machine's kind needs: cgroups v1 (hybrid) with the cgroupfs driver,
runc rather than crun, and `restrict_oom_score_adj` because the VM withholds CAP_SYS_RESOURCE.
"""

from __future__ import annotations

from pathlib import Path

from tests.cluster.images import PAUSE_IMAGE
from tests.harness.controlplane import controlplane

NODE_NAME = "zen-node"
NODE_IP = "10.250.0.1"  # on the loopback interface: the API server, kubelet and node address
POD_CIDR = "10.244.0.0/24"
BRIDGE = "zen-cni0"
GUARD_CHAIN = "ZEN-APISERVER"
SERVICE_CIDR = "10.96.0.0/24"  # as the control plane sets it; 10.96.0.1 is in its certificate


def containerd_config(base: Path, cni_conf: Path) -> str:
    """containerd with its root, state and sockets under `base`, CRI on runc, CNI from Debian."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
[grpc]
  address = "{base / "containerd.sock"}"
[ttrpc]
  address = "{base / "containerd.sock.ttrpc"}"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # These VMs withhold CAP_SYS_RESOURCE: never ask to lower a process's oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  BinaryName = "runc"
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{cni_conf}"
  max_conf_num = 1
"""


def cni_config(ipam_dir: Path) -> dict[str, object]:
    """The pod network: one bridge, addresses from POD_CIDR kept in `ipam_dir`."""
    return {
        "cniVersion": "1.0.0",
        "name": "zen",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # No masquerade: pods only talk to the node and each other, and no iptables
                # rules of the plugin's own are left behind.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }


def kubelet_config(*, socket: Path, pod_logs: Path) -> dict[str, object]:
    """The kubelet's configuration file."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # cgroups v1 in a hybrid layout on these machines.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{socket}",
        "address": NODE_IP,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": controlplane.free_port(),
        # `kubectl logs/exec` come from the API server without a client certificate.
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "failSwapOn": False,
        "podCIDR": POD_CIDR,
        "podLogsDir": str(pod_logs),
        "resolvConf": "/etc/resolv.conf",
        # The imported images cannot be pulled again: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi"},
        "serializeImagePulls": False,
        "syncFrequency": "10s",
        # kube-proxy makes the chains Services need; the kubelet's own would outlive it.
        "makeIPTablesUtilChains": False,
    }


def kube_proxy_config(*, kubeconfig: Path) -> dict[str, object]:
    """kube-proxy's configuration file: iptables mode."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        # Leave the machine's conntrack table size alone.
        "conntrack": {"maxPerCore": 0},
        "metricsBindAddress": f"127.0.0.1:{controlplane.free_port()}",
        "healthzBindAddress": f"127.0.0.1:{controlplane.free_port()}",
    }
