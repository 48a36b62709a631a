"""VLAN keys (vlan, vlanTrunk, preserveDefaultVlan) need bridge VLAN filtering.

Support is detected by turning VLAN filtering on for a throwaway bridge; where the kernel
lacks it these tests skip with that reason (a later issue runs them on the Debian kernel),
except the one that checks the error such a kernel gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bridge_harness import Lab

import kstate
from conftest import unique
from multihome.net import bridge_vlan, links
from multihome.net.netns import iproute_in

pytestmark = pytest.mark.netns

NO_SUPPORT = "kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)"


@pytest.fixture
def lab(netns_factory: Any, tmp_path: Path) -> Iterator[Lab]:
    the_lab = Lab(node=netns_factory("mhbn"), make_ns=netns_factory, data_dir=tmp_path / "ipam")
    try:
        yield the_lab
    finally:
        the_lab.cleanup()


def _supported(lab: Lab) -> bool:
    with iproute_in(lab.node.path) as ipr:
        return bridge_vlan.supported(ipr, unique("mhbp"))


@pytest.fixture
def vlan_lab(lab: Lab) -> Lab:
    if not _supported(lab):
        pytest.skip(NO_SUPPORT)
    return lab


def _vlans(lab: Lab, port: str) -> dict[int, int]:
    with iproute_in(lab.node.path) as ipr:
        link = links.by_name(ipr, port)
        assert link is not None
        return dict(bridge_vlan.port_vlans(ipr, link.index))


def test_vlan_on_a_kernel_without_filtering_is_a_clear_error(lab: Lab) -> None:
    if _supported(lab):
        pytest.skip("this kernel has bridge VLAN filtering; the error path cannot happen")
    c1 = lab.make_ns("mhbc")
    br = lab.bridge_name()
    out = lab.call("ADD", lab.conf(br, vlan=100), c1)
    assert out.rc != 0 and "lacks bridge VLAN filtering" in out.out["msg"]
    assert br not in lab.node_links()
    lab.assert_clean(c1)


def test_access_vlan_is_pvid_untagged(vlan_lab: Lab) -> None:
    lab = vlan_lab
    c1 = lab.make_ns("mhbc")
    br = lab.bridge_name()
    conf = lab.conf(br, vlan=100)
    result = lab.add(conf, c1)
    assert lab.node_links()[br]["linkinfo"]["info_data"]["vlan_filtering"] == 1
    vlans = _vlans(lab, result["interfaces"][1]["name"])
    assert vlans[100] & bridge_vlan.BRIDGE_VLAN_INFO_PVID
    assert vlans[100] & bridge_vlan.BRIDGE_VLAN_INFO_UNTAGGED
    assert 1 in vlans, "preserveDefaultVlan defaults to true"
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_preserve_default_vlan_false_removes_vlan_1(vlan_lab: Lab) -> None:
    lab = vlan_lab
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), vlan=100, preserveDefaultVlan=False)
    result = lab.add(conf, c1)
    vlans = _vlans(lab, result["interfaces"][1]["name"])
    assert 1 not in vlans and 100 in vlans
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_trunk_ports_are_tagged(vlan_lab: Lab) -> None:
    lab = vlan_lab
    c1 = lab.make_ns("mhbc")
    trunk = [{"id": 5}, {"minID": 10, "maxID": 12}]
    conf = lab.conf(lab.bridge_name(), vlanTrunk=trunk, preserveDefaultVlan=False)
    result = lab.add(conf, c1)
    vlans = _vlans(lab, result["interfaces"][1]["name"])
    assert sorted(vlans) == [5, 10, 11, 12]
    assert not any(flags & bridge_vlan.BRIDGE_VLAN_INFO_UNTAGGED for flags in vlans.values())
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_two_access_ports_in_one_vlan_reach_each_other(vlan_lab: Lab) -> None:
    lab = vlan_lab
    c1, c2 = lab.make_ns("mhbc"), lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), vlan=200, preserveDefaultVlan=False)
    lab.add(conf, c1, cid="v1")
    r2 = lab.add(conf, c2, cid="v2")
    assert kstate.ping(c1.name, r2["ips"][0]["address"].split("/")[0])
    lab.call("DEL", conf, c1, cid="v1").ok()
    lab.call("DEL", conf, c2, cid="v2").ok()
    lab.assert_clean(c1, c2)
