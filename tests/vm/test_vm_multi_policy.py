"""A VM behind the bridge binding is covered by a MultiNetworkPolicy: its launcher pod's
port on the node bridge carries the rules, so traffic to the VM's NIC (which keeps the
pod interface's MAC) is filtered although the VM's address lives in the guest."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.netns import unique
from support.vm_world import NS, SUBNET, VMLab, down, skip_without_vm_tools, up

pytestmark = pytest.mark.netns

VM_IP, FRIEND_IP, STRANGER_IP = f"{SUBNET}.30", f"{SUBNET}.31", f"{SUBNET}.32"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[VMLab]:
    skip_without_vm_tools()
    lab = up(tmp_path)
    try:
        yield lab
    finally:
        down(lab)


def _ping(lab: VMLab, pod: str, ip: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", f"mh-{NS}-{pod}", "ping", "-c", "1", "-W",
                           "2", ip], capture_output=True, timeout=30).returncode == 0


def test_vm_on_a_bridge_network_is_isolated_by_its_launcher_labels(lab: VMLab) -> None:
    lab.apply_nad("bridge-dev", {"cniVersion": "0.3.1", "name": "bridge-dev",
                                 "type": "cnv-bridge", "bridge": lab.dev_bridge})
    friend, stranger, vm = unique("fr"), unique("st"), unique("vm")
    for pod, ip in ((friend, FRIEND_IP), (stranger, STRANGER_IP)):
        lab.ok("pod", "run", pod, "-n", NS, "--networks", "bridge-dev",
               "--address", f"net1={ip}/24")
    lab.ok("vm", "run", vm, "-n", NS, "--networks", "bridge-dev",
           "--address", f"net1={VM_IP}/24")
    assert _ping(lab, stranger, VM_IP)

    policy = lab.tmp / "vm-policy.json"
    policy.write_text(json.dumps({
        "apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy",
        "metadata": {"name": "vm-from-friend", "namespace": NS,
                     "annotations": {"k8s.v1.cni.cncf.io/policy-for": "bridge-dev"}},
        "spec": {"podSelector": {"matchLabels": {"vm.kubevirt.io/name": vm}},
                 "ingress": [{"from": [{"ipBlock": {"cidr": f"{FRIEND_IP}/32"}}]}]}}))
    lab.ok("apply", "-f", str(policy))
    assert _ping(lab, friend, VM_IP)
    assert not _ping(lab, stranger, VM_IP)
    assert _ping(lab, stranger, FRIEND_IP)  # pods the policy does not select stay open

    lab.ok("delete", "-f", str(policy))
    assert _ping(lab, stranger, VM_IP)
