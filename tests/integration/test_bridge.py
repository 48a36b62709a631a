"""The bridge plugin in real namespaces: every key, traffic, CHECK, STATUS, parallel ADDs.

The plugin runs in-process through `skel.dispatch` (the executable's own path) inside a
namespace playing the node; see bridge_harness.
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

import pytest

from multihome.net import addr as net_addr
from multihome.net import links, netns
from multihome.net.netns import iproute_in
from support import kstate
from support.bridge_harness import Lab

pytestmark = pytest.mark.netns


def _port(lab: Lab, host_veth: str) -> dict[str, Any]:
    lk = lab.node_links()[host_veth]
    return lk


def test_add_result_kernel_state_check_and_del(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    br = lab.bridge_name()
    conf = lab.conf(br)
    result = lab.add(conf, c1)

    names = [i["name"] for i in result["interfaces"]]
    assert names[0] == br and names[1].startswith("veth") and len(names[1]) == 12
    assert names[2] == "eth0" and result["interfaces"][2]["sandbox"] == c1.path
    assert result["ips"] == [{"interface": 2, "address": "10.70.0.2/24", "gateway": "10.70.0.1"}]
    node = lab.node_links()
    assert node[names[1]]["master"] == br
    assert node[br]["address"] == result["interfaces"][0]["mac"]
    assert kstate.addresses(c1.name, "eth0") == ["10.70.0.2/24"]
    assert kstate.link(c1.name, "eth0")["address"] == result["interfaces"][2]["mac"]
    assert kstate.sysctl(c1.name, "net.ipv6.conf.eth0.accept_dad") == "0"
    assert kstate.sysctl(c1.name, "net.ipv4.conf.eth0.arp_notify") == "1"
    assert lab.allocations() == ["10.70.0.2"]

    lab.call("CHECK", {**conf, "prevResult": result}, c1).ok()
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)
    assert br in lab.node_links(), "the plugin must leave the bridge (like the reference)"


def test_check_reports_missing_address(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name())
    result = lab.add(conf, c1)
    c1.run("ip", "addr", "del", "10.70.0.2/24", "dev", "eth0")
    err = lab.call("CHECK", {**conf, "prevResult": result}, c1)
    assert err.rc != 0 and "10.70.0.2/24 is missing" in err.out["msg"]
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_two_namespaces_on_one_bridge_reach_each_other(lab: Lab) -> None:
    c1, c2 = lab.make_ns("mhbc"), lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name())
    r1 = lab.add(conf, c1, cid="c1")
    r2 = lab.add(conf, c2, cid="c2")
    ip2 = r2["ips"][0]["address"].split("/")[0]
    ip1 = r1["ips"][0]["address"].split("/")[0]
    assert ip1 != ip2
    assert kstate.ping(c1.name, ip2) and kstate.ping(c2.name, ip1)
    lab.call("DEL", conf, c1, cid="c1").ok()
    lab.call("DEL", conf, c2, cid="c2").ok()
    lab.assert_clean(c1, c2)


def test_is_gateway_puts_gateway_on_bridge_and_enables_forwarding(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    br = lab.bridge_name()
    conf = lab.conf(br, isGateway=True)
    result = lab.add(conf, c1)
    assert result["ips"][0]["gateway"] == "10.70.0.1"
    assert kstate.addresses(lab.node.name, br) == ["10.70.0.1/24"]
    assert kstate.sysctl(lab.node.name, "net.ipv4.ip_forward") == "1"
    assert not any(r["dst"] == "default" for r in kstate.routes(c1.name))
    assert kstate.ping(c1.name, "10.70.0.1")
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_is_default_gateway_adds_default_route(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    br = lab.bridge_name()
    conf = lab.conf(br, isDefaultGateway=True)
    result = lab.add(conf, c1)
    assert {"dst": "0.0.0.0/0", "gw": "10.70.0.1"} in result["routes"]
    defaults = [r for r in kstate.routes(c1.name) if r["dst"] == "default"]
    assert defaults and defaults[0]["gateway"] == "10.70.0.1"
    assert kstate.addresses(lab.node.name, br) == ["10.70.0.1/24"]  # implies isGateway
    lab.call("CHECK", {**conf, "prevResult": result}, c1).ok()
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_force_address(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    br = lab.bridge_name()
    lab.add(lab.conf(br, subnet=None), c1, cid="warm")  # creates the bridge
    lab.node.run("ip", "addr", "add", "10.70.0.200/24", "dev", br)
    conf = lab.conf(br, isGateway=True)
    c2 = lab.make_ns("mhbc")
    err = lab.call("ADD", conf, c2).error(999)
    assert "already has an IP address 10.70.0.200/24" in err["msg"]
    assert "forceAddress" in err["msg"]
    assert set(kstate.links(c2.name)) == {"lo"} and lab.allocations() == []

    forced = {**conf, "forceAddress": True}
    lab.add(forced, c2)
    assert kstate.addresses(lab.node.name, br) == ["10.70.0.1/24"]
    lab.call("DEL", forced, c2).ok()
    lab.call("DEL", lab.conf(br, subnet=None), c1, cid="warm").ok()
    lab.assert_clean(c1, c2)


def test_mtu_on_bridge_and_both_veth_ends(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    br = lab.bridge_name()
    conf = lab.conf(br, mtu=1400)
    result = lab.add(conf, c1)
    node = lab.node_links()
    assert node[br]["mtu"] == 1400
    assert node[result["interfaces"][1]["name"]]["mtu"] == 1400
    assert kstate.link(c1.name, "eth0")["mtu"] == 1400
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


@pytest.mark.parametrize(("key", "attr", "expected"), [
    ("hairpinMode", "hairpin", True),
    ("portIsolation", "isolated", True),
])
def test_port_flags(lab: Lab, key: str, attr: str, expected: bool) -> None:
    c1 = lab.make_ns("mhbc")
    br = lab.bridge_name()
    flags: dict[str, Any] = {key: True}
    conf = lab.conf(br, **flags)
    result = lab.add(conf, c1)
    port = kstate.port_info(_port(lab, result["interfaces"][1]["name"]))
    assert port[attr] is expected
    other = lab.conf(br, subnet="10.71.0.0/24")
    c2 = lab.make_ns("mhbc")
    plain = lab.add(other, c2, cid="plain")
    assert kstate.port_info(_port(lab, plain["interfaces"][1]["name"]))[attr] is False
    lab.call("DEL", conf, c1).ok()
    lab.call("DEL", other, c2, cid="plain").ok()
    lab.assert_clean(c1, c2)


def test_port_isolation_blocks_traffic_between_isolated_ports(lab: Lab) -> None:
    c1, c2 = lab.make_ns("mhbc"), lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), portIsolation=True)
    lab.add(conf, c1, cid="c1")
    r2 = lab.add(conf, c2, cid="c2")
    assert not kstate.ping(c1.name, r2["ips"][0]["address"].split("/")[0], timeout=2)
    lab.call("DEL", conf, c1, cid="c1").ok()
    lab.call("DEL", conf, c2, cid="c2").ok()
    lab.assert_clean(c1, c2)


def test_promisc_mode_on_bridge(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    br = lab.bridge_name()
    conf = lab.conf(br, promiscMode=True)
    result = lab.add(conf, c1)
    assert "PROMISC" in lab.node_links()[br]["flags"]
    lab.call("CHECK", {**conf, "prevResult": result}, c1).ok()
    err = lab.call("CHECK", {**lab.conf(br), "prevResult": result}, c1)
    assert err.rc != 0 and "promiscuous" in err.out["msg"]
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


@pytest.mark.parametrize("enabledad", [False, True])
def test_enabledad_controls_nodad_and_accept_dad(lab: Lab, enabledad: bool) -> None:
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), subnet="fd00:70::/64", enabledad=enabledad)
    result = lab.add(conf, c1)
    address = ipaddress.ip_interface(result["ips"][0]["address"])
    with iproute_in(c1.path) as ipr:
        link = links.by_name(ipr, "eth0")
        assert link is not None
        flags = net_addr.address_flags(ipr, link.index, address)
    assert bool(flags & net_addr.IFA_F_NODAD) is (not enabledad)
    assert kstate.sysctl(c1.name, "net.ipv6.conf.eth0.accept_dad") == ("1" if enabledad else "0")
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_l2_only_attachment_is_up_without_addresses(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), subnet=None)
    result = lab.add(conf, c1)
    assert "ips" not in result and len(result["interfaces"]) == 3
    assert kstate.link(c1.name, "eth0")["operstate"] == "UP"
    assert kstate.addresses(c1.name, "eth0") == []
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_disable_container_interface_leaves_it_down(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), subnet=None, disableContainerInterface=True)
    lab.add(conf, c1)
    assert "UP" not in kstate.link(c1.name, "eth0")["flags"]
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


@pytest.mark.parametrize("source", ["runtimeConfig", "args", "CNI_ARGS"])
def test_requested_mac(lab: Lab, source: str) -> None:
    c1 = lab.make_ns("mhbc")
    mac = "02:aa:bb:cc:dd:0e"
    conf = lab.conf(lab.bridge_name())
    env_args = ""
    if source == "runtimeConfig":
        conf["runtimeConfig"] = {"mac": mac}
    elif source == "args":
        conf["args"] = {"cni": {"mac": mac}}
    else:
        env_args = f"IgnoreUnknown=1;MAC={mac}"
    result = lab.add(conf, c1, args=env_args)
    assert result["interfaces"][2]["mac"] == mac
    assert kstate.link(c1.name, "eth0")["address"] == mac
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_status_and_versions(lab: Lab) -> None:
    br = lab.bridge_name()
    lab.call("STATUS", lab.conf(br, version="1.1.0")).ok()
    lab.node.run("ip", "link", "add", br, "type", "veth", "peer", "name", br + "p")
    err = lab.call("STATUS", lab.conf(br, version="1.1.0")).error(50)
    assert "not a bridge" in err["msg"]
    c1 = lab.make_ns("mhbc")
    add_err = lab.call("ADD", lab.conf(br), c1).error(7)
    assert "already exists but is not a bridge" in add_err["msg"]
    assert set(kstate.links(c1.name)) == {"lo"} and lab.allocations() == []


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_results_per_version(lab: Lab, version: str) -> None:
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), version=version, isGateway=True)
    result = lab.add(conf, c1)
    assert result["cniVersion"] == version
    ip = result["ips"][0]
    assert ("version" in ip) is (version < "1.0.0")
    if version >= "0.4.0":
        lab.call("CHECK", {**conf, "prevResult": result}, c1).ok()
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_parallel_adds_create_one_bridge_without_races(lab: Lab) -> None:
    """Eight ADDs at once on a bridge that does not exist yet: no 'file exists'."""
    br = lab.bridge_name()
    conf = lab.conf(br)
    namespaces = [lab.make_ns("mhbc") for _ in range(8)]
    outcomes: dict[int, Any] = {}

    def one(i: int) -> None:
        outcomes[i] = lab.call("ADD", conf, namespaces[i], cid=f"par{i}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [outcomes[i].ok() for i in range(8)]
    ips = {r["ips"][0]["address"] for r in results}
    assert len(ips) == 8
    with iproute_in(lab.node.path) as ipr:
        bridge = links.by_name(ipr, br)
        assert bridge is not None and bridge.kind == "bridge"
        assert len(links.ports_of(ipr, bridge.index)) == 8
    for i, ns in enumerate(namespaces):
        lab.call("DEL", conf, ns, cid=f"par{i}").ok()
    lab.assert_clean(*namespaces)


def test_netns_helpers_detect_a_deleted_namespace(netns_factory: Any) -> None:
    ns = netns_factory("mhbg")
    assert netns.exists(ns.path)
    with iproute_in(ns.path) as ipr:
        assert [lk.name for lk in links.all_links(ipr)] == ["lo"]
    ns.run("true")
    netns.delete_named(ns.name)
    assert not netns.exists(ns.path)
    with pytest.raises(netns.NetnsGone):
        iproute_in(ns.path)
