"""Bridge plugin VLAN keys (vlan, vlanTrunk, preserveDefaultVlan) on a VLAN-filtering bridge.

Debian-kernel tier only: the host kernel lacks bridge VLAN filtering (the error it gives
there is checked by tests/integration/test_bridge_vlan.py). The plugin runs in-process in
a node namespace (bridge_harness.Lab, the `lab` fixture of this directory); the
"external hosts" are vlan_world's.
"""

from __future__ import annotations

from typing import Any

import pytest

from multihome.net import bridge_vlan, links
from multihome.net.netns import iproute_in
from support import kstate
from support.bridge_harness import Lab
from support.vlan_world import external_host

pytestmark = pytest.mark.netns



def _vlans(lab: Lab, port: str) -> dict[int, int]:
    with iproute_in(lab.node.path) as ipr:
        link = links.by_name(ipr, port)
        assert link is not None
        return dict(bridge_vlan.port_vlans(ipr, link.index))


def _host_port(result: dict[str, Any]) -> str:
    name: str = result["interfaces"][1]["name"]
    return name


def test_access_vlan_is_pvid_untagged(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    br = lab.bridge_name()
    conf = lab.conf(br, vlan=100)
    result = lab.add(conf, c1)
    assert lab.node_links()[br]["linkinfo"]["info_data"]["vlan_filtering"] == 1
    vlans = _vlans(lab, _host_port(result))
    assert vlans[100] & bridge_vlan.BRIDGE_VLAN_INFO_PVID
    assert vlans[100] & bridge_vlan.BRIDGE_VLAN_INFO_UNTAGGED
    assert 1 in vlans, "preserveDefaultVlan defaults to true"
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_preserve_default_vlan_false_removes_vlan_1(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), vlan=100, preserveDefaultVlan=False)
    result = lab.add(conf, c1)
    vlans = _vlans(lab, _host_port(result))
    assert 1 not in vlans and 100 in vlans
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_trunk_ports_are_tagged(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    trunk = [{"id": 5}, {"minID": 10, "maxID": 12}]
    conf = lab.conf(lab.bridge_name(), vlanTrunk=trunk, preserveDefaultVlan=False)
    result = lab.add(conf, c1)
    vlans = _vlans(lab, _host_port(result))
    assert sorted(vlans) == [5, 10, 11, 12]
    assert not any(flags & bridge_vlan.BRIDGE_VLAN_INFO_UNTAGGED for flags in vlans.values())
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_tagged_traffic_stays_in_its_vlan(lab: Lab) -> None:
    """An access port on VLAN 100 reaches a host tagged 100 and not one tagged 200 (same
    subnet, so only the tags keep them apart); VLAN 200 the other way round; untagged
    frames reach a trunk only when it keeps the default VLAN (preserveDefaultVlan)."""
    br = lab.bridge_name()
    ext100, trunk_conf = external_host(lab, br, "e100", vid=100, address="10.70.0.101/24",
                                        preserve_default=False)
    ext200, _ = external_host(lab, br, "e200", vid=200, address="10.70.0.201/24",
                               preserve_default=False)
    # Untagged hosts on a separate subnet: one behind a trunk without VLAN 1, one with it.
    strict, _ = external_host(lab, br, "eu1", vid=None, address="10.71.0.1/24",
                               preserve_default=False)
    keeps_default, keep_conf = external_host(lab, br, "eu2", vid=None,
                                              address="10.71.0.2/24", preserve_default=True)
    c100, c200, cu = lab.make_ns("mhbc"), lab.make_ns("mhbc"), lab.make_ns("mhbc")
    conf100 = lab.conf(br, vlan=100, preserveDefaultVlan=False)
    conf200 = lab.conf(br, vlan=200, preserveDefaultVlan=False)
    conf_untagged = lab.conf(br, ipam={"type": "static",
                                       "addresses": [{"address": "10.71.0.9/24"}]})
    lab.add(conf100, c100, cid="c100")
    lab.add(conf200, c200, cid="c200")
    lab.add(conf_untagged, cu, cid="cu")

    assert kstate.ping(c100.name, "10.70.0.101")
    assert kstate.ping(c200.name, "10.70.0.201")
    assert not kstate.ping(c100.name, "10.70.0.201", timeout=1)
    assert not kstate.ping(c200.name, "10.70.0.101", timeout=1)
    assert kstate.ping(cu.name, "10.71.0.2"), "a trunk keeping VLAN 1 carries untagged frames"
    assert not kstate.ping(cu.name, "10.71.0.1", timeout=1), "untagged frame leaked to a trunk"

    for conf, ns, cid in ((conf100, c100, "c100"), (conf200, c200, "c200"),
                          (conf_untagged, cu, "cu"), (trunk_conf, ext100, "e100"),
                          (trunk_conf, ext200, "e200"), (trunk_conf, strict, "eu1"),
                          (keep_conf, keeps_default, "eu2")):
        lab.call("DEL", conf, ns, cid=cid).ok()
    lab.assert_clean(c100, c200, cu, ext100, ext200, strict, keeps_default)
