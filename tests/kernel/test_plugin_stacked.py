"""Debian-kernel tier: ipvlan and vlan traffic, dummy masters, and the same configs run
through the Go reference plugins in /usr/lib/cni giving the same results and links."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import kstate
from conftest import GO_CNI_DIR, Netns, run_cni, unique
from plugin_harness import call, conf, only_lo, static_ipam, veth

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("mode", ["l2", "l3"])
def test_ipvlan_traffic_between_two_containers(netns_factory: Any, mode: str) -> None:
    node, c1, c2 = netns_factory("mkn"), netns_factory("mkc"), netns_factory("mkc")
    master = unique("dm")
    node.run("ip", "link", "add", master, "type", "dummy")
    node.run("ip", "link", "set", master, "up")
    conf1 = conf("ipvlan", master=master, mode=mode, ipam=static_ipam("10.90.0.2/24"))
    conf2 = conf("ipvlan", master=master, mode=mode, ipam=static_ipam("10.90.0.3/24"))
    r1 = call(node, "ADD", conf1, netns_path=c1.path).ok()
    call(node, "ADD", conf2, netns_path=c2.path).ok()
    lk = kstate.link(c1.name, "eth0")
    assert lk is not None and lk["linkinfo"]["info_kind"] == "ipvlan"
    assert lk["linkinfo"]["info_data"]["mode"] == mode
    assert kstate.ping(c1.name, "10.90.0.3") and kstate.ping(c2.name, "10.90.0.2")
    call(node, "CHECK", {**conf1, "prevResult": r1}, netns_path=c1.path).ok()
    call(node, "DEL", conf1, netns_path=c1.path).ok()
    call(node, "DEL", conf2, netns_path=c2.path).ok()
    assert only_lo(c1) and only_lo(c2)


def test_vlan_plugin_traffic(netns_factory: Any) -> None:
    node, ext, cont = netns_factory("mkn"), netns_factory("mke"), netns_factory("mkc")
    master = unique("vm")
    veth(node, master, ext, "ext0")
    ext.run("ip", "link", "add", "link", "ext0", "name", "ext0.100", "type", "vlan", "id", "100")
    ext.run("ip", "link", "set", "ext0.100", "up")
    ext.run("ip", "addr", "add", "10.91.0.1/24", "dev", "ext0.100")
    c = conf("vlan", master=master, vlanId=100, ipam=static_ipam("10.91.0.2/24"))
    result = call(node, "ADD", c, netns_path=cont.path).ok()
    lk = kstate.link(cont.name, "eth0")
    assert lk is not None and lk["linkinfo"]["info_data"]["id"] == 100
    assert kstate.ping(cont.name, "10.91.0.1")
    call(node, "CHECK", {**c, "prevResult": result}, netns_path=cont.path).ok()
    call(node, "DEL", c, netns_path=cont.path).ok()
    assert only_lo(cont)


def test_macvlan_on_dummy_master(netns_factory: Any) -> None:
    node, cont = netns_factory("mkn"), netns_factory("mkc")
    master = unique("dm")
    node.run("ip", "link", "add", master, "type", "dummy")
    c = conf("macvlan", master=master, ipam=static_ipam("10.92.0.2/24"))
    call(node, "ADD", c, netns_path=cont.path).ok()
    assert kstate.addresses(cont.name, "eth0") == ["10.92.0.2/24"]
    call(node, "DEL", c, netns_path=cont.path).ok()
    assert only_lo(cont)


def _shape(ns: Netns, ifname: str) -> dict[str, Any]:
    """What should match between our plugin and the reference: kind, mode/id, mtu, addrs."""
    lk = kstate.link(ns.name, ifname)
    assert lk is not None
    info = lk["linkinfo"]
    data = info.get("info_data", {})
    return {"kind": info["info_kind"], "mode": data.get("mode"), "id": data.get("id"),
            "mtu": lk["mtu"], "addrs": kstate.addresses(ns.name, ifname),
            "up": "UP" in lk["flags"]}


def _strip_macs(result: dict[str, Any]) -> dict[str, Any]:
    out = dict(result)
    out["interfaces"] = [{k: v for k, v in i.items() if k not in ("mac", "sandbox")}
                         for i in result.get("interfaces", [])]
    return out


@pytest.mark.parametrize(("plugin", "keys"), [
    ("macvlan", {"mode": "vepa", "mtu": 1400}),
    ("ipvlan", {"mode": "l3", "mtu": 1300}),
    ("vlan", {"vlanId": 42, "mtu": 1400}),
])
def test_conformance_with_reference(netns_factory: Any, tmp_path: Path, plugin: str,
                                    keys: dict[str, Any]) -> None:
    node, ours, theirs = netns_factory("mkn"), netns_factory("mkc"), netns_factory("mkc")
    master = unique("dm")
    node.run("ip", "link", "add", master, "type", "dummy")
    node.run("ip", "link", "set", master, "up")
    c = conf(plugin, master=master, ipam=static_ipam("10.93.0.2/24"), **keys)
    mine = call(node, "ADD", c, netns_path=ours.path).ok()
    ref = run_cni(GO_CNI_DIR / plugin, "ADD", c, container_id="cid1", netns=theirs.path,
                  cni_path=GO_CNI_DIR, host_ns=node).ok()
    assert _strip_macs(mine) == _strip_macs(ref)
    assert _shape(ours, "eth0") == _shape(theirs, "eth0")
    call(node, "DEL", c, netns_path=ours.path).ok()
    run_cni(GO_CNI_DIR / plugin, "DEL", c, container_id="cid1", netns=theirs.path,
            cni_path=GO_CNI_DIR, host_ns=node).ok()
    assert only_lo(ours) and only_lo(theirs)


def test_conformance_tuning_and_host_device(netns_factory: Any, tmp_path: Path) -> None:
    node, ours, theirs = netns_factory("mkn"), netns_factory("mkc"), netns_factory("mkc")
    for ns in (ours, theirs):
        ns.run("ip", "link", "add", "eth0", "type", "dummy")
    c = conf("tuning", mtu=1280, promisc=True, txQLen=50, dataDir=str(tmp_path),
             sysctl={"net.ipv4.conf.eth0.arp_filter": "1"},
             prevResult={"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}]})
    call(node, "ADD", c, netns_path=ours.path).ok()
    run_cni(GO_CNI_DIR / "tuning", "ADD", c, container_id="cid1", netns=theirs.path,
            host_ns=node).ok()
    assert _shape(ours, "eth0") == _shape(theirs, "eth0")
    dev1, dev2 = unique("hd"), unique("hd")
    node.run("ip", "link", "add", dev1, "type", "dummy")
    node.run("ip", "link", "add", dev2, "type", "dummy")
    mine = call(node, "ADD", conf("host-device", device=dev1), netns_path=ours.path,
                ifname="net1").ok()
    ref = run_cni(GO_CNI_DIR / "host-device", "ADD", conf("host-device", device=dev2),
                  container_id="cid1", netns=theirs.path, ifname="net1", host_ns=node).ok()
    assert _strip_macs(mine) == _strip_macs(ref)
    assert _shape(ours, "net1")["kind"] == _shape(theirs, "net1")["kind"] == "dummy"
