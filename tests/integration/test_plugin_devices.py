"""host-device, tap, macvtap and tuning in real namespaces."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from multihome.net import links
from multihome.net.netns import iproute_in
from support import kstate
from support.netns import Netns, unique
from support.plugin_harness import call, conf, link_names, only_lo, static_ipam, veth

pytestmark = pytest.mark.netns


@pytest.fixture
def trio(netns_factory: Any) -> tuple[Netns, Netns, Netns]:
    return netns_factory("mhdn"), netns_factory("mhde"), netns_factory("mhdc")


def test_host_device_moves_in_and_back(trio: tuple[Netns, Netns, Netns]) -> None:
    node, ext, cont = trio
    dev = unique("hd")
    veth(node, dev, ext, "ext0", peer_addr="10.83.0.1/24")
    mac = kstate.link(node.name, dev)["address"]  # type: ignore[index]
    c = conf("host-device", device=dev, ipam=static_ipam("10.83.0.2/24"))
    result = call(node, "ADD", c, netns_path=cont.path).ok()
    assert result["interfaces"] == [{"name": "eth0", "mac": mac, "sandbox": cont.path}]
    inside = kstate.link(cont.name, "eth0")
    assert inside is not None and inside.get("ifalias") == dev
    assert dev not in link_names(node)
    assert kstate.ping(cont.name, "10.83.0.1")
    call(node, "CHECK", {**c, "prevResult": result}, netns_path=cont.path).ok()
    call(node, "DEL", c, netns_path=cont.path).ok()
    assert only_lo(cont)
    back = kstate.link(node.name, dev)
    assert back is not None and not back.get("ifalias")


def test_host_device_by_hwaddr_and_netns_gone(trio: tuple[Netns, Netns, Netns],
                                              netns_factory: Any) -> None:
    node, ext, _ = trio
    cont = netns_factory("mhdg")
    dev = unique("hd")
    veth(node, dev, ext, "ext0")
    mac = kstate.link(node.name, dev)["address"]  # type: ignore[index]
    c = conf("host-device", hwaddr=mac)
    call(node, "ADD", c, netns_path=cont.path, ifname="net1").ok()
    # What the kernel does to a physical device when its namespace dies: back to the
    # host under its container name (a veth would die with the namespace instead).
    cont.run("ip", "link", "set", "net1", "netns", node.name)
    path = cont.path
    subprocess.run(["ip", "netns", "del", cont.name], check=True)
    assert "net1" in link_names(node)
    call(node, "DEL", c, netns_path=path, ifname="net1").ok()
    names = link_names(node)
    assert dev in names and "net1" not in names


def test_host_device_dpdk_and_absent(trio: tuple[Netns, Netns, Netns], tmp_path: Path) -> None:
    node, _, cont = trio
    pci = "0000:05:00.0"
    (tmp_path / "bus" / "pci" / "devices" / pci).mkdir(parents=True)
    c = conf("host-device", "1.1.0", pciBusID=pci, sysfsRoot=str(tmp_path))
    result = call(node, "ADD", c, netns_path=cont.path).ok()
    assert result["interfaces"] == [{"name": "eth0", "pciID": pci}]
    assert only_lo(cont)
    err = call(node, "ADD", conf("host-device", device="nosuchdev0"),
               netns_path=cont.path).error(7)
    assert "not found" in err["msg"]
    call(node, "ADD", conf("host-device"), netns_path=cont.path).error(7)
    assert only_lo(cont)


def test_tap_owner_group_queues_mtu_mac_bridge(trio: tuple[Netns, Netns, Netns]) -> None:
    node, _, cont = trio
    cont.run("ip", "link", "add", "br0", "type", "bridge")
    c = conf("tap", owner=1000, group=100, multiQueue=True, mtu=1300, bridge="br0",
             mac="02:aa:bb:cc:dd:01", ipam=static_ipam("10.84.0.2/24"))
    c["runtimeConfig"] = {"mac": "02:aa:bb:cc:dd:02"}
    result = call(node, "ADD", c, netns_path=cont.path, ifname="tap0").ok()
    lk = kstate.link(cont.name, "tap0")
    assert lk is not None
    data = lk["linkinfo"]["info_data"]
    assert lk["linkinfo"]["info_kind"] == "tun" and data["type"] == "tap"
    with iproute_in(cont.path) as ipr:
        tap = links.by_name(ipr, "tap0")
    assert tap is not None and tap.data["IFLA_TUN_OWNER"] == 1000
    assert tap.data["IFLA_TUN_GROUP"] == 100 and tap.data["IFLA_TUN_MULTI_QUEUE"] == 1
    assert tap.num_tx_queues > 1
    assert lk["mtu"] == 1300 and lk["address"] == "02:aa:bb:cc:dd:02"
    assert lk["master"] == "br0"
    assert result["interfaces"][0]["mac"] == "02:aa:bb:cc:dd:02"
    assert kstate.addresses(cont.name, "tap0") == ["10.84.0.2/24"]
    call(node, "CHECK", {**c, "prevResult": result}, netns_path=cont.path, ifname="tap0").ok()
    call(node, "DEL", c, netns_path=cont.path, ifname="tap0").ok()
    assert "tap0" not in link_names(cont)
    err = call(node, "ADD", conf("tap", bridge="nobr0"), netns_path=cont.path).error(7)
    assert "nobr0" in err["msg"] and "eth0" not in link_names(cont)


@pytest.mark.parametrize("mode", ["bridge", "vepa", "private", "passthru"])
def test_macvtap_mode_mtu_promisc(trio: tuple[Netns, Netns, Netns], mode: str) -> None:
    node, ext, cont = trio
    lower = unique("lw")
    veth(node, lower, ext, "ext0")
    c = conf("macvtap", master=lower, mode=mode, mtu=1400, promiscMode=True)
    result = call(node, "ADD", c, netns_path=cont.path).ok()
    lk = kstate.link(cont.name, "eth0")
    assert lk is not None and lk["linkinfo"]["info_kind"] == "macvtap"
    assert lk["linkinfo"]["info_data"]["mode"] == mode
    assert lk["mtu"] == 1400 and "PROMISC" in lk["flags"]
    assert result["interfaces"][0]["mac"] == lk["address"]
    assert not any(n.startswith("mvt") for n in link_names(node))
    call(node, "CHECK", {**c, "prevResult": result}, netns_path=cont.path).ok()
    call(node, "DEL", c, netns_path=cont.path).ok()
    assert only_lo(cont)


def test_macvtap_device_id_names_the_lower_device(trio: tuple[Netns, Netns, Netns]) -> None:
    node, ext, cont = trio
    lower = unique("lw")
    veth(node, lower, ext, "ext0")
    c = conf("macvtap", master="ignored0", runtimeConfig={"deviceID": lower})
    call(node, "ADD", c, netns_path=cont.path).ok()
    assert "eth0" in link_names(cont)
    call(node, "DEL", c, netns_path=cont.path).ok()
    assert only_lo(cont)


def test_tuning_sets_and_restores_every_value(trio: tuple[Netns, Netns, Netns],
                                              tmp_path: Path) -> None:
    node, ext, cont = trio
    veth(cont, "eth0", ext, "ext0")
    before = kstate.link(cont.name, "eth0")
    assert before is not None
    key = "net.ipv4.conf.eth0.arp_filter"
    old_sysctl = kstate.sysctl(cont.name, key)
    prev = {"cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "mac": before["address"], "sandbox": cont.path}]}
    c = conf("tuning", mac="02:de:ad:be:ef:01", mtu=1280, promisc=True, allmulti=True,
             txQLen=77, sysctl={key: "1"}, dataDir=str(tmp_path))
    c["prevResult"] = prev
    result = call(node, "ADD", c, netns_path=cont.path).ok()
    assert result["interfaces"][0]["mac"] == "02:de:ad:be:ef:01"
    now = kstate.link(cont.name, "eth0")
    assert now is not None and now["address"] == "02:de:ad:be:ef:01" and now["mtu"] == 1280
    assert "PROMISC" in now["flags"] and "ALLMULTI" in now["flags"] and now["txqlen"] == 77
    assert kstate.sysctl(cont.name, key) == "1"
    call(node, "CHECK", {**c, "prevResult": result}, netns_path=cont.path).ok()
    call(node, "DEL", c, netns_path=cont.path).ok()
    after = kstate.link(cont.name, "eth0")
    assert after is not None
    for field in ("address", "mtu", "txqlen"):
        assert after[field] == before[field], field
    assert ("PROMISC" in after["flags"]) == ("PROMISC" in before["flags"])
    assert ("ALLMULTI" in after["flags"]) == ("ALLMULTI" in before["flags"])
    assert kstate.sysctl(cont.name, key) == old_sysctl
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("keys", "needle"), [
    ({"sysctl": {"kernel.hostname": "x"}}, "only net.*"),
    ({"sysctl": {"net.ipv4.ip_forward": 1}}, "must be a string"),
    ({"mtu": -5}, "invalid mtu"),
    ({"mac": "01:00:00:00:00:01"}, "multicast"),
])
def test_tuning_bad_config(trio: tuple[Netns, Netns, Netns], tmp_path: Path,
                           keys: dict[str, Any], needle: str) -> None:
    node, _, cont = trio
    c = conf("tuning", dataDir=str(tmp_path), prevResult={"cniVersion": "1.0.0"}, **keys)
    err = call(node, "ADD", c, netns_path=cont.path).error(7)
    assert needle in err["msg"]
    assert list(tmp_path.iterdir()) == []


def test_tuning_allowlist_and_unchained(trio: tuple[Netns, Netns, Netns], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    node, _, cont = trio
    allow = tmp_path / "allow.conf"
    allow.write_text("# only rp_filter\nnet\\.ipv4\\.conf\\..*\\.rp_filter\n")
    monkeypatch.setenv("MH_TUNING_ALLOWLIST", str(allow))
    c = conf("tuning", dataDir=str(tmp_path / "d"), sysctl={"net.ipv4.ip_forward": "1"},
             prevResult={"cniVersion": "1.0.0"})
    assert "allow-list" in call(node, "ADD", c, netns_path=cont.path).error(7)["msg"]
    unchained = conf("tuning", dataDir=str(tmp_path / "d"))
    assert "chained" in call(node, "ADD", unchained, netns_path=cont.path).error(7)["msg"]
