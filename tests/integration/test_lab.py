"""The lab as a user types it: `multihome lab up`, `pod run/exec/get/describe/delete`."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli_lab import CLILab, lab_down, lab_up, new_lab
from support.host_state import host_netns, link_names
from support.netns import unique
from support.node_world import nncp

pytestmark = pytest.mark.netns

Lab = CLILab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create namespaces and bridges")
    lab = new_lab(Lab, tmp_path, "mh")
    lab_up(lab, "10.65.0.1/24", "10.64.0.0/24")
    try:
        yield lab
    finally:
        lab_down(lab)


def test_seed_like_flow_two_pods_external_host_and_isolation(lab: Lab) -> None:
    nad = lab.nad_file("bridge-dev", {"cniVersion": "0.3.1", "name": "bridge-dev",
                                      "type": "cnv-bridge", "bridge": lab.dev_bridge,
                                      "macspoofchk": True, "vlan": 0})
    assert "bridge-dev created" in lab.ok("apply", "-f", nad, "-n", "multus-test")
    assert lab.ok("get", "net-attach-def", "-n", "multus-test").split()[:3] == [
        "NAME", "AGE", "bridge-dev"]
    out = lab.ok("pod", "run", "vm-a", "-n", "multus-test", "--networks", "bridge-dev",
                 "--address", "net1=10.65.0.10/24")
    assert "pod/vm-a: eth0 attached to mh-cluster" in out
    assert "pod/vm-a: net1 attached to multus-test/bridge-dev" in out
    assert "guest-side address, not from CNI" in out
    lab.ok("pod", "run", "vm-b", "-n", "multus-test", "--networks", "bridge-dev",
           "--address", "net1=10.65.0.11/24")

    addrs = lab.ok("pod", "exec", "vm-a", "-n", "multus-test", "--", "ip", "-br", "address")
    names = [line.split()[0].split("@")[0] for line in addrs.splitlines()]
    assert names == ["lo", "eth0", "net1"]
    assert "10.64.0." in addrs and "10.65.0.10/24" in addrs

    table = lab.ok("pod", "get", "-n", "multus-test", "-o", "wide")
    assert table.splitlines()[0].split() == ["NAME", "STATUS", "IP", "NODE", "NETWORKS", "AGE"]
    assert "net1=multus-test/bridge-dev" in table and "Running" in table

    described = lab.ok("pod", "describe", "vm-a", "-n", "multus-test")
    assert "Network Status:" in described and "net1:  multus-test/bridge-dev" in described
    body = json.loads(lab.ok("pod", "get", "vm-a", "-n", "multus-test", "-o", "json"))
    status = json.loads(body["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
    assert [(s["name"], s["interface"], s.get("default", False)) for s in status] == [
        ("mh-cluster", "eth0", True), ("multus-test/bridge-dev", "net1", False)]

    for target in ("10.65.0.11", "10.65.0.1"):
        lab.ok("pod", "exec", "vm-a", "-n", "multus-test", "--", "ping", "-c", "1", "-W", "3",
               target)

    refused = lab.mh("pod", "run", "p1", "-n", "other", "--networks", "multus-test/bridge-dev")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'Error: pod other/p1 may not use network multus-test/bridge-dev: namespace isolation '
        'allows only NADs in "other" and global namespaces [default]')
    assert "mh-other-p1" not in host_netns()
    assert "No resources found in other namespace." in lab.mh("pod", "get", "-n", "other").stderr

    out = lab.ok("pod", "delete", "vm-a", "vm-b", "-n", "multus-test")
    assert 'pod "vm-a" deleted' in out and 'pod "vm-b" deleted' in out
    assert not {"mh-multus-test-vm-a", "mh-multus-test-vm-b"} & host_netns()


def test_json_annotation_file_duplicate_run_and_delete_twice(lab: Lab) -> None:
    nad = lab.nad_file("ipnet", {"cniVersion": "1.0.0", "type": "bridge",
                                 "bridge": lab.dev_bridge, "capabilities": {"ips": True},
                                 "ipam": {"type": "static"}})
    lab.ok("apply", "-f", nad)
    sel = lab.tmp / "sel.json"
    sel.write_text(json.dumps([{"name": "ipnet", "interface": "data0",
                                "ips": ["10.65.0.20/24"]}]))
    lab.ok("pod", "run", "p1", "--annotations", str(sel))
    status = json.loads(json.loads(lab.ok("pod", "get", "p1", "-o", "json"))["metadata"]
                        ["annotations"]["k8s.v1.cni.cncf.io/network-status"])
    assert status[1]["interface"] == "data0" and status[1]["ips"] == ["10.65.0.20"]
    lab.ok("pod", "exec", "p1", "--", "ping", "-c", "1", "-W", "3", "10.65.0.1")

    again = lab.mh("pod", "run", "p1", "--networks", "ipnet")
    assert again.returncode == 1
    assert again.stderr.strip() == 'Error: pods "p1" already exists in namespace "default"'

    lab.ok("pod", "delete", "p1")
    gone = lab.mh("pod", "delete", "p1")
    assert gone.returncode == 1
    assert gone.stderr.strip() == 'Error: pods "p1" not found in namespace "default"'
    missing = lab.mh("pod", "get", "p1")
    assert missing.returncode == 1 and 'pods "p1" not found' in missing.stderr


def test_failed_run_leaves_nothing_and_delete_works_when_parts_are_gone(lab: Lab) -> None:
    nope = lab.mh("pod", "run", "p2", "--networks", "no-such-nad")
    assert nope.returncode == 1
    assert "NAD default/no-such-nad not found" in nope.stderr
    assert lab.ok("pod", "get", "-A") == ""
    assert "mh-default-p2" not in host_netns()

    lab.ok("pod", "run", "p3")
    subprocess.run(["ip", "netns", "del", "mh-default-p3"], check=True)
    assert 'pod "p3" deleted' in lab.ok("pod", "delete", "p3")
    ports = subprocess.run(["ip", "-o", "link", "show", "master", lab.cluster_bridge],
                           capture_output=True, text=True).stdout
    assert ports.strip() == ""


def test_exec_in_missing_pod_and_bad_address(lab: Lab) -> None:
    proc = lab.mh("pod", "exec", "ghost", "--", "true")
    assert proc.returncode == 1
    assert proc.stderr.strip() == 'Error: pods "ghost" not found in namespace "default"'
    bad = lab.mh("pod", "run", "p4", "--address", "net1")
    assert bad.returncode == 1 and "expected IFNAME=ADDRESS/PREFIX" in bad.stderr


def test_lab_down_removes_pods_and_the_world(lab: Lab) -> None:
    lab.ok("pod", "run", "p5")
    out = lab.ok("lab", "down")
    assert 'pod "p5" deleted' in out and "lab is down" in out
    assert lab.external not in host_netns() and "mh-default-p5" not in host_netns()
    assert not {lab.dev_bridge, lab.cluster_bridge} & link_names()


def _resource_nad(lab: Lab, bridge: str) -> str:
    """The seed NAD's shape: a resourceName naming `bridge`, the config on the lab bridge."""
    path = lab.tmp / f"res-{bridge}.yml"
    config = json.dumps({"cniVersion": "0.3.1", "name": "res", "type": "cnv-bridge",
                         "bridge": lab.dev_bridge})
    path.write_text(
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n"
        "  name: res\n  annotations:\n"
        f"    k8s.v1.cni.cncf.io/resourceName: bridge.network.kubevirt.io/{bridge}\n"
        f"spec:\n  config: '{config}'\n")
    return str(path)


def test_strict_node_resources_refuse_a_pod_without_the_bridge(lab: Lab) -> None:
    lab.ok("lab", "up", "--node-resources", "strict")
    missing = unique("mhm")
    lab.ok("apply", "-f", _resource_nad(lab, missing))
    refused = lab.mh("pod", "run", "p6", "--networks", "res")
    assert refused.returncode == 1
    # the seed's case: the resource names another bridge than the config; the message
    # says so, and what to do, instead of only "create that bridge"
    assert refused.stderr.strip() == (
        f"Error: pod default/p6 cannot be scheduled on this node: NAD default/res asks the "
        f"scheduler for bridge.network.kubevirt.io/{missing}, a bridge named {missing}, "
        f"while its config attaches pods to the bridge {lab.dev_bridge}; the node has no "
        f"bridge {missing}. A scheduler places such a pod only on a node that has a bridge "
        f"{missing} too: make one (e.g. examples/bridge-dev-resource-policy.yml), or change "
        f"the NAD's resourceName to bridge.network.kubevirt.io/{lab.dev_bridge}")
    assert "mh-default-p6" not in host_netns()
    assert lab.ok("pod", "get", "-A") == ""
    # the bridge the resource names is there: the same pod runs
    lab.ok("apply", "-f", _resource_nad(lab, lab.dev_bridge))
    out = lab.ok("pod", "run", "p6", "--networks", "res")
    assert "warning" not in out and "pod/p6: net1 attached to default/res" in out


def test_warn_node_resources_run_the_pod_and_say_so(lab: Lab) -> None:
    missing = unique("mhm")
    lab.ok("apply", "-f", _resource_nad(lab, missing))
    out = lab.ok("pod", "run", "p7", "--networks", "res")  # warn is the default
    assert (f"warning: pod default/p7 cannot be scheduled on this node: NAD default/res "
            f"asks the scheduler for bridge.network.kubevirt.io/{missing}") in out
    assert "lab setting node_resources=warn" in out
    assert "pod/p7 running" in out


def test_dev_bridge_from_a_policy_and_down_removes_it_with_the_checkpoint(
        tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create namespaces and bridges")
    lab = new_lab(Lab, tmp_path, "mh")
    uplink = f"{lab.dev_bridge}-up"
    policy = tmp_path / "policy.yml"
    policy.write_text(json.dumps(nncp("lab-bridge", {
        "interfaces": [{"name": lab.dev_bridge, "type": "linux-bridge", "state": "up",
                        "bridge": {"port": [{"name": uplink}]}},
                       {"name": uplink, "state": "up"}],
        "probes": {"default-gateway": False}})))
    try:
        out = lab_up(lab, "10.66.0.1/24", "10.67.0.0/24", "--dev-bridge-by-policy")
        assert "left to a NodeNetworkConfigurationPolicy" in out
        assert lab.dev_bridge not in link_names() and uplink in link_names()
        lab.ok("apply", "-f", str(policy))
        enacted = lab.ok("node", "enact")
        assert f"created linux-bridge {lab.dev_bridge}" in enacted
        assert "lab-bridge: Available (SuccessfullyConfigured)" in enacted
        assert "Available" in lab.ok("get", "nnce")
        assert f"bridge.network.kubevirt.io/{lab.dev_bridge}: 1k" in lab.ok("node", "describe")
        # a pending --no-commit checkpoint is dropped by `lab down`, its timer stopped
        lab.ok("node", "apply", "-f", str(policy), "--no-commit", "--timeout", "300")
        node_dir = tmp_path / "state" / "node"
        assert (node_dir / "checkpoint.json").exists()
        down = lab.ok("lab", "down")
        assert "node checkpoint" in down and "dropped" in down
        assert not node_dir.exists()
        assert not {lab.dev_bridge, uplink, lab.cluster_bridge} & link_names()
    finally:
        lab_down(lab)
