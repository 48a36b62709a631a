"""The tier itself works: the guest kernel has what the other kernel-tier tests rely on.

Each link kind is created with pyroute2 inside a namespace the test owns (the `netns`
fixture deletes it, and every link with it), then read back from the kernel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from pyroute2 import NetNS

from support.netns import Netns, unique


@pytest.fixture
def ipr(netns: Netns) -> Iterator[Any]:
    with NetNS(netns.name) as handle:
        yield handle


def _kind(ipr: Any, name: str) -> str:
    (msg,) = ipr.link("get", ifname=name)
    return str(msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND"))


def _info_data(ipr: Any, name: str) -> Any:
    (msg,) = ipr.link("get", ifname=name)
    return msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")


def test_runs_in_the_booted_debian_kernel() -> None:
    assert os.uname().release == os.environ["MH_KERNEL_TIER"]
    assert os.geteuid() == 0


def test_dummy_vlan_and_ipvlan_links(ipr: Any) -> None:
    master, vlan, ipvl = unique("dm"), unique("vl"), unique("iv")
    ipr.link("add", ifname=master, kind="dummy")
    master_idx = ipr.link_lookup(ifname=master)[0]
    ipr.link("add", ifname=vlan, kind="vlan", link=master_idx, vlan_id=100)
    ipr.link("add", ifname=ipvl, kind="ipvlan", link=master_idx, ipvlan_mode=1)  # 1 = l3

    assert _kind(ipr, master) == "dummy"
    assert _kind(ipr, vlan) == "vlan"
    assert _info_data(ipr, vlan).get_attr("IFLA_VLAN_ID") == 100
    assert _kind(ipr, ipvl) == "ipvlan"
    assert _info_data(ipr, ipvl).get_attr("IFLA_IPVLAN_MODE") == 1
    for name in (vlan, ipvl):
        (msg,) = ipr.link("get", ifname=name)
        assert msg.get_attr("IFLA_LINK") == master_idx


def test_bridge_vlan_filtering_with_tagged_port(netns: Netns, ipr: Any) -> None:
    bridge, port, peer = unique("br"), unique("vp"), unique("vq")
    ipr.link("add", ifname=bridge, kind="bridge", br_vlan_filtering=1)
    ipr.link("add", ifname=port, kind="veth", peer=peer)
    bridge_idx = ipr.link_lookup(ifname=bridge)[0]
    port_idx = ipr.link_lookup(ifname=port)[0]
    ipr.link("set", index=port_idx, master=bridge_idx)
    ipr.vlan_filter("add", index=port_idx, vlan_info={"vid": 100})

    assert _kind(ipr, bridge) == "bridge"
    assert _info_data(ipr, bridge).get_attr("IFLA_BR_VLAN_FILTERING") == 1
    # The port's VLAN table as the kernel reports it.
    shown = json.loads(netns.run("bridge", "-j", "vlan", "show", "dev", port).stdout)
    vids = {v["vlan"] for entry in shown for v in entry["vlans"]}
    assert 100 in vids


def test_nftables_in_a_namespace(netns: Netns) -> None:
    table = unique("mhk")
    netns.run("nft", "add", "table", "inet", table)
    listed = netns.run("nft", "-j", "list", "tables").stdout
    assert f'"name": "{table}"' in listed
