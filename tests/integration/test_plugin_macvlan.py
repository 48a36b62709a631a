"""macvlan on a veth master in a node namespace, with traffic to the master's peer."""

from __future__ import annotations

from typing import Any

import pytest

from support import kstate
from support.netns import Netns, unique
from support.plugin_harness import call, conf, only_lo, static_ipam, veth

pytestmark = pytest.mark.netns


@pytest.fixture
def world(netns_factory: Any) -> tuple[Netns, Netns, Netns, str]:
    """(node, external, container, master): master in node, its peer in external."""
    node, ext, cont = netns_factory("mhmn"), netns_factory("mhme"), netns_factory("mhmc")
    master = unique("mvm")
    veth(node, master, ext, "ext0", peer_addr="10.81.0.1/24")
    return node, ext, cont, master


@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", "passthru"])
def test_add_traffic_check_del(world: tuple[Netns, Netns, Netns, str], mode: str) -> None:
    node, _, cont, master = world
    c = conf("macvlan", master=master, mode=mode, mtu=1400,
             ipam=static_ipam("10.81.0.2/24"))
    result = call(node, "ADD", c, netns_path=cont.path).ok()
    assert result["interfaces"][0]["name"] == "eth0"
    assert result["interfaces"][0]["sandbox"] == cont.path
    assert result["ips"] == [{"interface": 0, "address": "10.81.0.2/24"}]
    lk = kstate.link(cont.name, "eth0")
    assert lk is not None and lk["linkinfo"]["info_kind"] == "macvlan"
    assert lk["linkinfo"]["info_data"]["mode"] == mode
    assert lk["mtu"] == 1400 and lk["address"] == result["interfaces"][0]["mac"]
    assert kstate.ping(cont.name, "10.81.0.1")
    call(node, "CHECK", {**c, "prevResult": result}, netns_path=cont.path).ok()
    call(node, "DEL", c, netns_path=cont.path).ok()
    assert only_lo(cont)
    call(node, "DEL", c, netns_path=cont.path).ok()  # idempotent


def test_mac_from_runtime_config_and_no_ipam_brings_link_up(
        world: tuple[Netns, Netns, Netns, str]) -> None:
    node, _, cont, master = world
    c = conf("macvlan", master=master, runtimeConfig={"mac": "02:11:22:33:44:55"})
    result = call(node, "ADD", c, netns_path=cont.path).ok()
    assert result["interfaces"][0]["mac"] == "02:11:22:33:44:55"
    assert "ips" not in result or result["ips"] == []
    lk = kstate.link(cont.name, "eth0")
    assert lk is not None and "UP" in lk["flags"]
    call(node, "DEL", c, netns_path=cont.path).ok()
    assert only_lo(cont)


def test_master_defaults_to_default_route_interface(
        world: tuple[Netns, Netns, Netns, str]) -> None:
    node, _, cont, master = world
    c = conf("macvlan", ipam=static_ipam("10.81.0.3/24"))
    err = call(node, "ADD", c, netns_path=cont.path).error(7)
    assert "default route" in err["msg"]
    assert only_lo(cont)
    node.run("ip", "addr", "add", "10.81.0.9/24", "dev", master)
    node.run("ip", "route", "add", "default", "via", "10.81.0.1")
    call(node, "ADD", c, netns_path=cont.path).ok()
    lk = kstate.link(cont.name, "eth0")
    assert lk is not None and lk["linkinfo"]["info_kind"] == "macvlan"
    assert kstate.ping(cont.name, "10.81.0.1")
    call(node, "DEL", c, netns_path=cont.path).ok()


def test_link_in_container(netns_factory: Any) -> None:
    node, ext, cont = netns_factory("mhmn"), netns_factory("mhme"), netns_factory("mhmc")
    veth(cont, "lower0", ext, "ext0", peer_addr="10.82.0.1/24")
    c = conf("macvlan", master="lower0", linkInContainer=True,
             ipam=static_ipam("10.82.0.2/24"))
    call(node, "ADD", c, netns_path=cont.path, ifname="net1").ok()
    assert kstate.ping(cont.name, "10.82.0.1")
    call(node, "DEL", c, netns_path=cont.path, ifname="net1").ok()
    assert "net1" not in kstate.links(cont.name)


def test_mtu_above_master_and_ipam_failure_leave_nothing(
        world: tuple[Netns, Netns, Netns, str]) -> None:
    node, _, cont, master = world
    err = call(node, "ADD", conf("macvlan", master=master, mtu=9000),
               netns_path=cont.path).error(7)
    assert "MTU" in err["msg"]
    bad_ipam = conf("macvlan", master=master, ipam={"type": "static", "addresses": []})
    assert call(node, "ADD", bad_ipam, netns_path=cont.path).rc != 0
    assert only_lo(cont)
