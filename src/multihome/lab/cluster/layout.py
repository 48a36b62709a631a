"""Where the lab cluster keeps everything, and the addresses it serves on.

One folder under the lab's state dir holds certificates, kubeconfigs, etcd's data, the
kubelet's and containerd's roots, logs and pid files; sockets live under /run. `down`
removes both, so the machine is left as it was.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from multihome.lab.cluster.build import KUBE_VERSION, Binaries, kube_binaries
from multihome.paths import STATE_ENV

LAYOUT_FILE = "cluster.json"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
              "containerd", "multihome-webhook", "multihome-daemon", "kubelet")
# what `lab cni` can make the cluster's meta plugin (lab/cluster/up.py: use_cni)
CNI_CHOICES = ("multihome", "multus", "multihome-on-multus-config")
# started on demand: Multus thick in multihome's place (lab/cluster/multus.py)
PEERS = ("multus-daemon",)


@dataclass(frozen=True)
class ClusterLayout:
    """Every path and port of one lab cluster."""

    root: str
    run: str = "/run/multihome-lab"
    version: str = KUBE_VERSION
    node_name: str = "mh-lab-node"
    api_host: str = "127.0.0.1"
    # the kubelet refuses a loopback node address: the node's address is the gateway
    # address on the pods' bridge, a link of this machine with no uplink
    node_ip: str = "10.244.0.1"
    api_port: int = 16443
    etcd_port: int = 23790
    etcd_peer_port: int = 23800
    webhook_port: int = 18443
    kubelet_port: int = 10250
    service_cidr: str = "10.96.0.0/16"
    # the pods' default network (eth0): a host bridge with no uplink, no masquerade
    pod_bridge: str = "mh-k8s0"
    pod_subnet: str = "10.244.0.0/24"
    system_namespace: str = "multihome-system"

    @property
    def base(self) -> Path:
        return Path(self.root)

    def daemon_env(self) -> dict[str, str]:
        """What multihome's node daemon needs from its environment, whoever starts it
        (`lab up`, or `lab cni` from a shell without $MULTIHOME_STATE_DIR): the lab's
        state dir is a config path root its networks' IPAM lives under."""
        return {"NODE_NAME": self.node_name, STATE_ENV: os.path.dirname(self.root)}

    def dir(self, *parts: str) -> Path:
        return self.base.joinpath(*parts)

    @property
    def bins(self) -> Binaries:
        return kube_binaries(self.version)

    @property
    def api_url(self) -> str:
        return f"https://{self.api_host}:{self.api_port}"

    @property
    def pki(self) -> Path:
        return self.dir("pki")

    def kubeconfig(self, who: str) -> Path:
        return self.dir("kubeconfig", f"{who}.kubeconfig")

    def log(self, component: str) -> Path:
        return self.dir("logs", f"{component}.log")

    def pidfile(self, component: str) -> Path:
        return self.dir("pids", f"{component}.pid")

    @property
    def cni_bin(self) -> Path:
        return self.dir("cni", "bin")

    @property
    def cni_conf(self) -> Path:
        return self.dir("cni", "net.d")

    @property
    def cni_cache(self) -> Path:
        return self.dir("cni", "cache")

    @property
    def daemon_state(self) -> Path:
        """The node daemon's own state (DHCP leases): the lab's, never the machine's."""
        return self.dir("daemon")

    @property
    def kubelet_root(self) -> Path:
        return self.dir("kubelet")

    @property
    def containerd_socket(self) -> str:
        return os.path.join(self.run, "containerd", "containerd.sock")

    @property
    def daemon_socket(self) -> str:
        return os.path.join(self.run, "multihome.sock")

    def save(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / LAYOUT_FILE).write_text(json.dumps(asdict(self), indent=2))


def cluster_root(state_dir: str) -> str:
    return os.path.join(state_dir, "cluster")


def load(state_dir: str) -> ClusterLayout | None:
    """The layout `lab up --kubernetes` recorded, if a cluster was started there."""
    file = Path(cluster_root(state_dir)) / LAYOUT_FILE
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    known = {f.name for f in fields(ClusterLayout)}
    return ClusterLayout(**{k: v for k, v in data.items() if k in known})
