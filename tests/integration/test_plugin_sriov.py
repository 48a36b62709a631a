"""sriov against a fake sysfs tree, with veth ends standing in for the PF and VF netdevs.

No SR-IOV hardware here: a veth PF reports no VFs over netlink, so VF settings are
tested only for their explicit refusal; moving and restoring the VF netdev is real.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from support import kstate
from support.netns import Netns, unique
from support.plugin_harness import call, conf, link_names, only_lo, static_ipam, veth

pytestmark = pytest.mark.netns

PF, VF = "0000:03:00.0", "0000:03:00.2"


def fake_sysfs(root: Path, pf_netdev: str, vf_netdev: str) -> None:
    devs = root / "bus" / "pci" / "devices"
    (devs / PF / "net" / pf_netdev).mkdir(parents=True)
    (devs / VF).mkdir(parents=True)
    if vf_netdev:
        (devs / VF / "net" / vf_netdev).mkdir(parents=True)
    os.symlink(f"../{PF}", devs / VF / "physfn")
    os.symlink(f"../{VF}", devs / PF / "virtfn1")


@pytest.fixture
def lab(netns_factory: Any, tmp_path: Path) -> tuple[Netns, Netns, Netns, str, str]:
    node, ext, cont = netns_factory("mhsn"), netns_factory("mhse"), netns_factory("mhsc")
    pf, vf = unique("pf"), unique("vf")
    veth(node, pf, ext, "extpf")
    veth(node, vf, ext, "extvf", peer_addr="10.85.0.1/24")
    fake_sysfs(tmp_path / "sys", pf, vf)
    return node, ext, cont, pf, vf


def test_vf_moved_renamed_and_restored(lab: tuple[Netns, Netns, Netns, str, str],
                                       tmp_path: Path) -> None:
    node, _, cont, _, vf = lab
    before = kstate.link(node.name, vf)
    assert before is not None
    c = conf("sriov", "1.1.0", deviceID=VF, sysfsRoot=str(tmp_path / "sys"),
             dataDir=str(tmp_path / "state"), ipam=static_ipam("10.85.0.2/24"))
    result = call(node, "ADD", c, netns_path=cont.path, ifname="net1").ok()
    assert result["interfaces"][0]["pciID"] == VF
    assert result["interfaces"][0]["name"] == "net1"
    assert vf not in link_names(node) and "net1" in link_names(cont)
    assert kstate.ping(cont.name, "10.85.0.1")
    call(node, "CHECK", {**c, "prevResult": result}, netns_path=cont.path, ifname="net1").ok()
    call(node, "DEL", c, netns_path=cont.path, ifname="net1").ok()
    after = kstate.link(node.name, vf)
    assert after is not None and after["address"] == before["address"]
    assert after["mtu"] == before["mtu"] and only_lo(cont)
    assert list((tmp_path / "state").iterdir()) == []
    call(node, "DEL", c, netns_path=cont.path, ifname="net1").ok()


def test_vf_settings_on_a_pf_without_sriov_are_refused(
        lab: tuple[Netns, Netns, Netns, str, str], tmp_path: Path) -> None:
    node, _, cont, pf, vf = lab
    c = conf("sriov", deviceID=VF, sysfsRoot=str(tmp_path / "sys"),
             dataDir=str(tmp_path / "state"), vlan=100, spoofchk="off")
    err = call(node, "ADD", c, netns_path=cont.path).error(999)
    assert pf in err["msg"] and "SR-IOV" in err["msg"]
    assert vf in link_names(node) and only_lo(cont)


def test_dpdk_vf_not_moved(netns_factory: Any, tmp_path: Path) -> None:
    node, cont = netns_factory("mhsn"), netns_factory("mhsc")
    fake_sysfs(tmp_path / "sys", "pf0", "")
    c = conf("sriov", "1.1.0", deviceID=VF, sysfsRoot=str(tmp_path / "sys"),
             dataDir=str(tmp_path / "state"))
    result = call(node, "ADD", c, netns_path=cont.path).ok()
    assert result["interfaces"] == [{"name": "eth0", "pciID": VF}]
    assert only_lo(cont)
    call(node, "DEL", c, netns_path=cont.path).ok()


@pytest.mark.parametrize(("keys", "needle"), [
    ({}, "deviceID"),
    ({"deviceID": "0000:09:00.1"}, "not found"),
    ({"deviceID": "bogus"}, "invalid PCI address"),
    ({"deviceID": PF}, "not an SR-IOV virtual function"),
    ({"deviceID": VF, "vlan": 5000}, "invalid sriov vlan"),
    ({"deviceID": VF, "trust": "maybe"}, "trust"),
    ({"deviceID": VF, "link_state": "up"}, "link_state"),
    ({"deviceID": VF, "min_tx_rate": 10, "max_tx_rate": 5}, "greater than"),
])
def test_bad_config(lab: tuple[Netns, Netns, Netns, str, str], tmp_path: Path,
                    keys: dict[str, Any], needle: str) -> None:
    node, _, cont, _, vf = lab
    c = conf("sriov", sysfsRoot=str(tmp_path / "sys"), dataDir=str(tmp_path / "state"), **keys)
    assert needle in call(node, "ADD", c, netns_path=cont.path).error(7)["msg"]
    assert vf in link_names(node) and only_lo(cont)
