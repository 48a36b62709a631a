"""Multus thick swapped for multihome on a node, with Multus' own files unchanged.

The daemon reads Multus' daemon-config.json, writes the 00-multus.conf Multus 4.3 would,
and the runtime's call through the installed `multus-shim` executable (with that file as
its stdin) reaches it on `<socketDir>/multus.sock`. The daemon runs inside a namespace
playing the node, as in test_daemon.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from multihome.attach.plan import NETWORKS_ANNOTATION
from multihome.store import NAD, POD, Object
from multihome.stores import open_store
from support.cni_exec import CNIOutcome, install_cni, run_cni
from support.daemon_world import MULTIHOME, NOTHING, Node
from support.multus_generator import expected_multus_conf
from support.netns import Netns, unique

pytestmark = pytest.mark.netns


def install_multus_names(bin_dir: Path) -> None:
    subprocess.run([MULTIHOME, "install-cni", "--bin-dir", str(bin_dir), "--multus-names",
                    "--types", "bridge,host-local"], check=True, capture_output=True,
                   timeout=120)


def seed_store(path: Path, pod: str, bridge: str, ipam_dir: Path) -> None:
    """A SQLite store holding one NAD and a pod that selects it."""
    store = open_store(str(path))
    try:
        store.apply(Object.from_manifest({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD,
            "metadata": {"name": "side", "namespace": "default"},
            "spec": {"config": json.dumps({
                "cniVersion": "0.3.1", "type": "bridge", "bridge": bridge,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.66.0.0/24"}]],
                         "dataDir": str(ipam_dir)}})}}))
        store.apply(Object.from_manifest({
            "apiVersion": "v1", "kind": POD,
            "metadata": {"name": pod, "namespace": "default",
                         "annotations": {NETWORKS_ANNOTATION: "side"}}}))
    finally:
        store.close()


def wait_ready(node: Node) -> None:
    deadline = time.monotonic() + 30
    while node.get("/readyz") != b"ready\n":
        assert time.monotonic() < deadline, f"daemon never ready: {node.log()}"
        time.sleep(0.05)


def test_multus_daemon_config_and_shim_unchanged(node: Node, netns: Netns) -> None:
    node.write_default()
    multus_bin = node.tmp / "multus-bin"
    install_multus_names(multus_bin)
    plain = node.tmp / "plain-bin"
    install_cni(plain)
    assert not (plain / "multus-shim").exists()  # written only when asked for
    socket_dir = node.tmp / "run-multus"
    daemon_config = {
        "chrootDir": "/hostroot", "cniVersion": "0.3.1", "logLevel": "verbose",
        "logToStderr": True, "cniConfigDir": str(node.conf_dir),
        "multusAutoconfigDir": str(node.conf_dir), "multusConfigFile": "auto",
        "socketDir": f"{socket_dir}/", "daemonSocketDir": str(socket_dir),
        "binDir": str(multus_bin), "cniDir": str(node.cache),
    }
    config_path = node.tmp / "daemon-config.json"
    config_path.write_text(json.dumps(daemon_config))
    cid = unique("c")
    store = node.tmp / "store.db"
    seed_store(store, cid, unique("mhs"), node.ipam)
    node.multus_socket = str(socket_dir / "multus.sock")
    node.start("--multus-config", str(config_path), "--store", str(store))
    wait_ready(node)

    written = (node.conf_dir / "00-multus.conf").read_text()
    assert written == expected_multus_conf(daemon_config,
                                           str(node.conf_dir / "10-cluster.conflist"))
    assert not (node.conf_dir / "00-multihome.conflist").exists()

    def cni(command: str) -> CNIOutcome:
        """The runtime's call for a .conf: the file's text is the plugin's stdin."""
        return run_cni(multus_bin / "multus-shim", command, written.encode(),
                       container_id=cid, netns=netns.path, host_ns=node.ns,
                       cni_path=f"{node.extra_bin}:{multus_bin}",
                       cni_args=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={cid}")

    result = cni("ADD").ok()
    assert result["cniVersion"] == "0.3.1"  # the daemon config's, laid over the request
    addrs = {line.split()[1]: line.split()[3] for line in
             netns.run("ip", "-o", "-4", "addr", "show").stdout.splitlines()
             if line.split()[1] != "lo"}
    # eth0 from the cluster network, net1 from the NAD the pod selects in the daemon's store
    assert addrs == {"eth0": "10.62.0.2/24", "net1": "10.66.0.2/24"}
    assert node.ns.run("ping", "-c1", "-W2", "10.62.0.2").returncode == 0
    metrics = (node.get("/metrics") or b"").decode()
    assert 'multihome_cni_requests_total{command="ADD",type="multus-shim",result="ok"} 1' \
        in metrics

    cni("DEL").ok()
    cni("DEL").ok()  # idempotent
    assert node.leftovers(netns) == NOTHING


def test_bad_multus_daemon_config_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "daemon-config.json"
    path.write_text(json.dumps({"cniVersion": "0.3.1", "socketDir": 7}))
    out = subprocess.run([MULTIHOME, "daemon", "--multus-config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        f"Error: {path}: 'socketDir' must be a string, got 7"]
