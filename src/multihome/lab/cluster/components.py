"""Command lines and config files of the lab cluster's components.

Settings that this machine needs and a stock node would not: the kubelet and containerd
use the cgroupfs driver (no systemd as PID 1), the kubelet accepts cgroup v1
(`failCgroupV1: false`) and swap (`failSwapOn: false`), containerd clamps OOM scores
(`restrict_oom_score_adj`: root here has no CAP_SYS_RESOURCE); everything binds to loopback, the
node's address included, so nothing of the cluster is reachable from outside the machine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from multihome.lab.cluster.images import PAUSE_IMAGE
from multihome.lab.cluster.layout import ClusterLayout


def _p(path: Path | str) -> str:
    return str(path)


def kubeconfig_text(layout: ClusterLayout, user: str, *, cert: Path | None = None,
                    key: Path | None = None, token: str | None = None) -> str:
    auth: dict[str, str] = {}
    if cert is not None and key is not None:
        auth = {"client-certificate": _p(cert), "client-key": _p(key)}
    if token is not None:
        auth = {"token": token}
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "mh-lab", "cluster": {
            "server": layout.api_url, "certificate-authority": _p(layout.pki / "ca.crt")}}],
        "users": [{"name": user, "user": auth}],
        "contexts": [{"name": "mh-lab", "context": {"cluster": "mh-lab", "user": user}}],
        "current-context": "mh-lab",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def etcd(layout: ClusterLayout) -> list[str]:
    return [
        _p(layout.bins.path("etcd")), "--name", "mh-lab",
        "--data-dir", _p(layout.dir("etcd")),
        "--listen-client-urls", f"http://127.0.0.1:{layout.etcd_port}",
        "--advertise-client-urls", f"http://127.0.0.1:{layout.etcd_port}",
        "--listen-peer-urls", f"http://127.0.0.1:{layout.etcd_peer_port}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{layout.etcd_peer_port}",
        "--initial-cluster", f"mh-lab=http://127.0.0.1:{layout.etcd_peer_port}",
        "--listen-metrics-urls", "",
        "--log-level", "warn",
        "--quota-backend-bytes", str(512 << 20),
    ]


def apiserver(layout: ClusterLayout) -> list[str]:
    pki = layout.pki
    return [
        _p(layout.bins.path("kube-apiserver")),
        "--etcd-servers", f"http://127.0.0.1:{layout.etcd_port}",
        "--bind-address", layout.api_host, "--advertise-address", layout.api_host,
        "--secure-port", str(layout.api_port),
        "--tls-cert-file", _p(pki / "apiserver.crt"),
        "--tls-private-key-file", _p(pki / "apiserver.key"),
        "--client-ca-file", _p(pki / "ca.crt"),
        "--kubelet-client-certificate", _p(pki / "apiserver-kubelet.crt"),
        "--kubelet-client-key", _p(pki / "apiserver-kubelet.key"),
        "--kubelet-preferred-address-types", "InternalIP",
        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file", _p(pki / "sa.pub"),
        "--service-account-signing-key-file", _p(pki / "sa.key"),
        "--service-cluster-ip-range", layout.service_cidr,
        "--authorization-mode", "Node,RBAC",
        "--enable-admission-plugins",
        "NodeRestriction,ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
        "--allow-privileged=true",
        "--endpoint-reconciler-type", "none",
        "--profiling=false",
        "--v", "1",
    ]


def controller_manager(layout: ClusterLayout) -> list[str]:
    pki = layout.pki
    kc = _p(layout.kubeconfig("controller-manager"))
    return [
        _p(layout.bins.path("kube-controller-manager")),
        "--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
        "--bind-address", "127.0.0.1", "--secure-port", "10257",
        "--service-account-private-key-file", _p(pki / "sa.key"),
        "--root-ca-file", _p(pki / "ca.crt"),
        "--cluster-signing-cert-file", _p(pki / "ca.crt"),
        "--cluster-signing-key-file", _p(pki / "ca.key"),
        "--use-service-account-credentials=true",
        "--leader-elect=false",
        "--controllers", "*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
        "--node-monitor-grace-period", "40s",
        "--v", "1",
    ]


def scheduler(layout: ClusterLayout) -> list[str]:
    kc = _p(layout.kubeconfig("scheduler"))
    return [
        _p(layout.bins.path("kube-scheduler")),
        "--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
        "--bind-address", "127.0.0.1", "--secure-port", "10259",
        "--leader-elect=false", "--v", "1",
    ]


# Plain copies, not overlay mounts: the lab's images are one small layer each, and
# overlayfs needs a filesystem under containerd's root that takes it as an upper
# layer, which a state dir on overlay, tmpfs quirks or a container's root may not give.
SNAPSHOTTER = "native"


def containerd_config(layout: ClusterLayout) -> str:
    """containerd 1.6's CRI plugin: our CNI dirs, our pause image, cgroupfs."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return "\n".join([
        "version = 2",
        f'root = "{layout.dir("containerd", "root")}"',
        f'state = "{layout.run}/containerd/state"',
        "[grpc]",
        f'  address = "{layout.containerd_socket}"',
        "[ttrpc]",
        f'  address = "{layout.containerd_socket}.ttrpc"',
        '[plugins."io.containerd.internal.v1.opt"]',
        f'  path = "{layout.dir("containerd", "opt")}"',
        f"[{cri}]",
        f'  sandbox_image = "{PAUSE_IMAGE}"',
        "  enable_selinux = false",
        "  disable_apparmor = true",
        # root on these machines lacks CAP_SYS_RESOURCE, so no process may lower its
        # oom_score_adj (the sandbox asks for -998): clamp to containerd's own instead
        "  restrict_oom_score_adj = true",
        f"[{cri}.containerd]",
        f'  snapshotter = "{SNAPSHOTTER}"',
        '  default_runtime_name = "runc"',
        f"[{cri}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{cri}.containerd.runtimes.runc.options]",
        "  SystemdCgroup = false",
        f"[{cri}.cni]",
        f'  bin_dir = "{layout.cni_bin}"',
        f'  conf_dir = "{layout.cni_conf}"',
        "  max_conf_num = 1",
        "",
    ])


def containerd(layout: ClusterLayout) -> list[str]:
    return ["containerd", "--config", _p(layout.dir("containerd", "config.toml"))]


def kubelet_config(layout: ClusterLayout) -> str:
    pki = layout.pki
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.node_ip,
        "port": layout.kubelet_port,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "readOnlyPort": 0,
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,  # this machine: cgroup v1 (hybrid)
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "tlsCertFile": _p(pki / "kubelet.crt"),
        "tlsPrivateKeyFile": _p(pki / "kubelet.key"),
        "authentication": {"anonymous": {"enabled": False},
                           "webhook": {"enabled": True},
                           "x509": {"clientCAFile": _p(pki / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "clusterDomain": "cluster.local",
        "resolvConf": "",
        "staticPodPath": "",
        "enableServer": True,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "evictionPressureTransitionPeriod": "10s",
        "syncFrequency": "10s",
        "nodeStatusReportFrequency": "10s",
        "localStorageCapacityIsolation": False,
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "registerNode": True,
        "volumeStatsAggPeriod": "0s",
    }
    return yaml.safe_dump(config, sort_keys=False)


def kubelet(layout: ClusterLayout) -> list[str]:
    return [
        _p(layout.bins.path("kubelet")),
        "--config", _p(layout.dir("kubelet-config.yaml")),
        "--kubeconfig", _p(layout.kubeconfig("kubelet")),
        "--root-dir", _p(layout.kubelet_root),
        "--hostname-override", layout.node_name,
        "--node-ip", layout.node_ip,
        "--v", "1",
    ]


def default_network(layout: ClusterLayout) -> str:
    """eth0 of every pod: a host bridge without uplink, host-local addresses."""
    conf = {
        "cniVersion": "1.0.0",
        "name": "mh-k8s",
        "plugins": [{
            "type": "bridge",
            "bridge": layout.pod_bridge,
            "isGateway": True,
            "ipMasq": False,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": layout.pod_subnet}]],
                     "dataDir": _p(layout.dir("ipam"))},
        }],
    }
    return json.dumps(conf, indent=2) + "\n"


def _webhooks(deploy_dir: Path) -> list[tuple[str, str, int, str]]:
    """(kind, configuration name, index, path) of every webhook deploy/ declares."""
    found = []
    for file in sorted(deploy_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") not in (
                    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
                continue
            for i, hook in enumerate(doc.get("webhooks") or []):
                service = (hook.get("clientConfig") or {}).get("service") or {}
                found.append((doc["kind"], doc["metadata"]["name"], i,
                              str(service.get("path", "/"))))
    return found


def deploy_overlay(layout: ClusterLayout, overlay_dir: Path, deploy_dir: Path,
                   ca_bundle: str) -> str:
    """A kustomization over deploy/: the webhook and the daemon run as host processes
    here (there is no multihome image in a registry), so their workloads are removed and
    every webhook points at the host process, trusted through the lab's CA."""
    url = f"https://127.0.0.1:{layout.webhook_port}"

    def delete(kind: str, name: str) -> dict[str, object]:
        return {"patch": yaml.safe_dump({
            "$patch": "delete", "apiVersion": "apps/v1" if kind != "Service" else "v1",
            "kind": kind, "metadata": {"name": name, "namespace": layout.system_namespace}})}

    hooks: dict[tuple[str, str], list[dict[str, object]]] = {}
    for kind, name, index, path in _webhooks(deploy_dir):
        hooks.setdefault((kind, name), []).append(
            {"op": "replace", "path": f"/webhooks/{index}/clientConfig",
             "value": {"url": url + path, "caBundle": ca_bundle}})
    doc = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize takes a base by relative path only
        "resources": [os.path.relpath(deploy_dir.resolve(), overlay_dir.resolve())],
        "patches": [
            delete("DaemonSet", "multihome-node"),
            delete("Deployment", "multihome-webhook"),
            delete("Service", "multihome-webhook"),
            *({"target": {"kind": kind, "name": name}, "patch": json.dumps(ops)}
              for (kind, name), ops in hooks.items()),
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)
