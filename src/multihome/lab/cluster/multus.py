"""Swap the lab cluster's CNI between multihome and Multus thick (the yardstick).

Multus 4 (daemon + shim, built from its Go module by build.py) runs the way its thick
DaemonSet runs it, as a host process here: its own ServiceAccount and RBAC (the
ClusterRole of Multus' deployment manifest), the daemon config of that manifest with
this lab's directories, the reference Go plugins as delegates (`cnv-bridge` is the bridge
plugin under KubeVirt's name), and the cluster's default network picked by its auto
config. The in-cluster client of client-go reads its token only from
/var/run/secrets/kubernetes.io/serviceaccount, so the lab writes it there while Multus
runs and removes the folder when it stops (only if the lab made it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from multihome.lab.cluster import build, kubectl, procs
from multihome.lab.cluster.layout import ClusterLayout
from multihome.lab.cluster.procs import ClusterError
from multihome.paths import write_file_atomic

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MULTUS_CONF = "00-multus.conf"
MULTIHOME_CONF = "00-multihome.conflist"
GO_PLUGINS = Path("/usr/lib/cni")
SOCKET_DIR = Path("/run/multus")

RBAC: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "ServiceAccount",
     "metadata": {"name": "multus", "namespace": "kube-system"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
     "metadata": {"name": "multus"},
     "rules": [
         {"apiGroups": ["k8s.cni.cncf.io"], "resources": ["*"], "verbs": ["*"]},
         {"apiGroups": [""], "resources": ["pods", "pods/status"],
          "verbs": ["get", "list", "update", "watch"]},
         {"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
          "verbs": ["create", "patch", "update"]},
     ]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
     "metadata": {"name": "multus"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                 "name": "multus"},
     "subjects": [{"kind": "ServiceAccount", "name": "multus", "namespace": "kube-system"}]},
]


def multus_dir(layout: ClusterLayout) -> Path:
    return layout.dir("multus")


def daemon_config(layout: ClusterLayout) -> dict[str, object]:
    """The thick DaemonSet's daemon-config.json with this lab's folders."""
    return {
        "chrootDir": "",
        "cniVersion": "0.3.1",
        "logLevel": "verbose",
        "logToStderr": True,
        "cniConfigDir": str(layout.cni_conf),
        "multusAutoconfigDir": str(layout.cni_conf),
        "multusConfigFile": "auto",
        # the shim config Multus generates does not carry the socket dir: its shim looks
        # in the default one, so the daemon must serve there
        "socketDir": str(SOCKET_DIR),
        "binDir": str(multus_dir(layout) / "bin"),
        "cniDir": str(multus_dir(layout) / "cache"),
    }


def _delegate_bin(layout: ClusterLayout) -> Path:
    """The Go reference plugins, and cnv-bridge as KubeVirt ships it (bridge renamed)."""
    folder = multus_dir(layout) / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    for plugin in GO_PLUGINS.iterdir():
        link = folder / plugin.name
        if not link.exists():
            link.symlink_to(plugin)
    for alias, real in (("cnv-bridge", "bridge"), ("cnv-tuning", "tuning")):
        if not (folder / alias).exists():
            (folder / alias).symlink_to(GO_PLUGINS / real)
    return folder


def _service_account_files(layout: ClusterLayout, token: str) -> None:
    if not SA_DIR.exists():
        SA_DIR.mkdir(parents=True, mode=0o700)
        (multus_dir(layout) / "made-sa-dir").write_text(str(SA_DIR))
    # a bearer token: readable by root only, like every credential the lab writes
    write_file_atomic(SA_DIR / "token", token, 0o600)
    write_file_atomic(SA_DIR / "ca.crt", (layout.pki / "ca.crt").read_bytes(), 0o644)
    write_file_atomic(SA_DIR / "namespace", "kube-system", 0o644)


def use_multus(layout: ClusterLayout) -> None:
    """Stop multihome's daemon, remove its config, and run Multus thick in its place."""
    check_binaries()
    bins = build.build_multus()
    multus_dir(layout).mkdir(parents=True, exist_ok=True)
    procs.stop(layout, "multihome-daemon")
    (layout.cni_conf / MULTIHOME_CONF).unlink(missing_ok=True)
    kubectl.apply(layout, RBAC)
    _service_account_files(layout, kubectl.create_token(layout, "kube-system", "multus"))
    shutil.copyfile(bins.path("multus-shim"), layout.cni_bin / "multus-shim.tmp")
    os.chmod(layout.cni_bin / "multus-shim.tmp", 0o755)
    os.replace(layout.cni_bin / "multus-shim.tmp", layout.cni_bin / "multus-shim")
    _delegate_bin(layout)
    config = multus_dir(layout) / "daemon-config.json"
    config.write_text(json.dumps(daemon_config(layout), indent=2))
    procs.start(layout, "multus-daemon", [str(bins.path("multus-daemon")), "-config",
                                          str(config)],
                env={"KUBERNETES_SERVICE_HOST": layout.api_host,
                     "KUBERNETES_SERVICE_PORT": str(layout.api_port),
                     "MULTUS_NODE_NAME": layout.node_name})
    procs.wait_for(layout, "multus-daemon",
                   lambda: (layout.cni_conf / MULTUS_CONF).exists(), 60,
                   f"writing {MULTUS_CONF}")


def stop_multus(layout: ClusterLayout) -> None:
    """Stop Multus and remove what use_multus made (its config, shim, token files)."""
    procs.stop(layout, "multus-daemon")
    (layout.cni_conf / MULTUS_CONF).unlink(missing_ok=True)
    for name in ("multus-shim", "multus"):  # Multus' shim, or multihome's under its names
        (layout.cni_bin / name).unlink(missing_ok=True)
    marker = multus_dir(layout) / "made-sa-dir"
    if marker.exists():
        shutil.rmtree(SA_DIR, ignore_errors=True)
        for parent in (SA_DIR.parent, SA_DIR.parent.parent):
            try:
                parent.rmdir()
            except OSError:
                break
        marker.unlink()
    shutil.rmtree(SOCKET_DIR, ignore_errors=True)


def check_binaries() -> None:
    if not GO_PLUGINS.is_dir():
        raise ClusterError(f"{GO_PLUGINS} is missing: install containernetworking-plugins")


def multihome_on_multus_config(layout: ClusterLayout, multihome: list[str],
                               node_kubeconfig: Path) -> str:
    """Replace a running Multus by multihome with Multus' own files left as they are.

    Stops multus-daemon (which deletes its 00-multus.conf on the way out, as Multus
    does), writes multihome's executables under Multus' names over `multus-shim`, and
    starts `multihome daemon --multus-config <Multus' daemon-config.json>`, which serves on
    Multus' socket and writes 00-multus.conf back as Multus generates it. Returns the
    00-multus.conf Multus had written, for comparison.
    """
    config = multus_dir(layout) / "daemon-config.json"
    written = layout.cni_conf / MULTUS_CONF
    if procs.pid_of(layout, "multus-daemon") is None or not written.exists():
        raise ClusterError("Multus is not serving this lab cluster: `lab cni multus` first")
    before = written.read_text()
    procs.stop(layout, "multus-daemon")
    subprocess.run([*multihome, "install-cni", "--bin-dir", str(layout.cni_bin),
                    "--multus-names"], check=True, capture_output=True, timeout=60)
    procs.start(layout, "multihome-daemon", [
        *multihome, "--store", f"k8s:{node_kubeconfig}", "daemon",
        "--multus-config", str(config), "--bin-dir", str(layout.cni_bin)],
        env=layout.daemon_env())
    procs.wait_for(layout, "multihome-daemon",
                   lambda: written.exists() and (SOCKET_DIR / "multus.sock").exists(),
                   60, "serving on Multus' socket")
    return before
