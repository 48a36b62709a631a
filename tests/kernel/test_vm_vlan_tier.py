"""A VM on a VLAN-100 NAD reaches the VLAN-100 external host and not the VLAN-200 one.

A lab inside the tier's guest (its root namespace is the node): NADs in a store, pods
through the engine, the launcher pod and its bridge binding made by `vm run`'s own
`lifecycle.launch`, undone by `lifecycle.delete`. Only qemu is elsewhere: the VM is the
lab VM that run_tier.py booted on the host, and vm_peer carries the tap's frames to its
NIC, as qemu would. The VM takes net1's MAC and address, as the bridge binding hands them
over; the NAD's macspoofchk lets its frames through only because of that. The external
hosts are pods on a trunk NAD (VLANs 100 and 200) with an 802.1Q interface each, in one
subnet, so only the tags keep them apart.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from multihome.lab import pods as labpods
from multihome.lab import vms as lifecycle
from multihome.lab import world
from multihome.lab.settings import LabSettings
from multihome.net import links, netns
from multihome.store import NAD, Object, Store
from multihome.stores import open_store
from multihome.vm import agent
from multihome.vm.state import VMRecord
from support import kstate, vm_peer
from support.netns import unique
from support.vlan_world import add_address

pytestmark = pytest.mark.netns

NS = "multus-test"
VM_ADDRESS = "10.70.0.50/24"
HOSTS = {100: "10.70.0.101/24", 200: "10.70.0.201/24"}
BOOT_WAIT_S = 240.0  # the VM boots while the guest does; both are emulated


@dataclass
class VlanLab:
    settings: LabSettings
    store: Store

    def nad(self, name: str, **keys: Any) -> None:
        config = {"cniVersion": "1.0.0", "type": "bridge", "bridge": self.settings.dev_bridge,
                  "preserveDefaultVlan": False, **keys}
        self.store.apply(Object.from_manifest({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD,
            "metadata": {"name": name, "namespace": NS},
            "spec": {"config": json.dumps(config)}}))

    def external_host(self, vid: int) -> str:
        """A pod on the trunk NAD with `HOSTS[vid]` on net1.<vid>; returns its netns name."""
        name = f"ext{vid}"
        labpods.run(self.store, self.settings, NS, name, labpods.networks_annotation("trunk"))
        add_address(labpods.netns_path(NS, name), "net1", HOSTS[vid], vid=vid)
        return labpods.netns_name(NS, name)


@pytest.fixture
def vlan_lab(tmp_path: Path) -> Iterator[VlanLab]:
    settings = LabSettings(state_dir=str(tmp_path / "state"), dev_bridge=unique("mhvd"),
                           cluster_bridge=unique("mhvk"), external_netns=unique("mhvx"),
                           cluster_subnet="10.69.0.0/24", external_address="10.250.0.1/24")
    world.up(settings)
    lab = VlanLab(settings, open_store(str(tmp_path / "s.db")))
    try:
        yield lab
    finally:
        for pod in ("ext100", "ext200", "vlanvm"):
            if labpods.exists_netns(NS, pod):
                labpods.delete(lab.store, settings, NS, pod)
        world.down(settings)
        lab.store.close()


def _guest(vm_dir: str, script: str) -> agent.ExecResult:
    return agent.run(vm_dir, script, timeout=90)


def test_vm_on_vlan_100_nad_reaches_only_vlan_100(vlan_lab: VlanLab, tmp_path: Path) -> None:
    peer = vm_peer.from_env()
    vlan_lab.nad("trunk", vlanTrunk=[{"id": 100}, {"id": 200}])
    vlan_lab.nad("vlan100", vlan=100, macspoofchk=True,
                 ipam={"type": "static", "addresses": [{"address": VM_ADDRESS}]})
    ext100, ext200 = vlan_lab.external_host(100), vlan_lab.external_host(200)
    # no pod network NIC: the runner's VM has one NIC, joined to net1 below
    rec = VMRecord(name="vlanvm", namespace=NS, memory=0, networks="vlan100", accel="host",
                   pod_network=False)
    (nic_fd,) = lifecycle.launch(vlan_lab.store, vlan_lab.settings, rec, {})
    nic = nic_fd.nic
    try:
        assert (nic.ifname, nic.binding, nic.addresses) == ("net1", "bridge", [VM_ADDRESS])
        with vm_peer.FrameRelay(nic_fd.fd, peer.nic), \
                vm_peer.agent_dir(peer, tmp_path) as vm_dir:
            agent.wait_ready(vm_dir, time.monotonic() + BOOT_WAIT_S, lambda: "")
            # what the lab's qemu command line gives its guest: net1's MAC and address
            took = _guest(vm_dir, f"ip link set eth0 down && ip link set eth0 address "
                                  f"{nic.mac} && ip link set eth0 up && "
                                  f"ip addr add {VM_ADDRESS} dev eth0")
            assert took.rc == 0, took.output
            try:
                to100 = _guest(vm_dir, "ping -c 1 -w 15 10.70.0.101")
                to200 = _guest(vm_dir, "ping -c 1 -w 3 10.70.0.201")
                assert to100.rc == 0, f"VM -> VLAN 100 host: {to100.output!r}"
                assert to200.rc != 0, f"VM reached the VLAN 200 host: {to200.output!r}"
                vm_ip = VM_ADDRESS.split("/")[0]
                assert kstate.ping(ext100, vm_ip, timeout=10), "VLAN 100 host -> VM"
                assert not kstate.ping(ext200, vm_ip, timeout=2), "VLAN 200 host -> VM"
            finally:
                _guest(vm_dir, "ip addr flush dev eth0")
    finally:
        os.close(nic_fd.fd)  # qemu's copy, had there been a qemu
        lifecycle.delete(vlan_lab.store, vlan_lab.settings, NS, rec.name)
    assert not labpods.exists_netns(NS, rec.pod)
    with netns.iproute_in(None) as ipr:
        bridge = links.by_name(ipr, vlan_lab.settings.dev_bridge)
        assert bridge is not None
        ports = {p.name for p in links.ports_of(ipr, bridge.index)}
    assert len(ports) == 3, f"only the uplink and the two trunks stay: {ports}"
