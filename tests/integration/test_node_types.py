"""Node policies with the interface types this host's kernel has (vxlan, mac-vlan), and
the clear error for those it lacks (dummy, bond, vrf, ipvlan: applied in
tests/kernel/test_node_types_tier.py)."""

from __future__ import annotations

from typing import Any

import pytest

from multihome.node import schema, transaction
from support import kstate
from support.netns import Netns
from support.node_types import (
    applies_and_rolls_back_exactly,
    kernel_has,
    missing_feature_is_refused,
    offloads,
    show_applies_back_as_a_no_op,
    shown,
)

pytestmark = pytest.mark.netns


def _underlay(ns: Netns) -> None:
    """A veth pair with an address: what a vxlan tunnel runs over."""
    ns.run("ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1")
    ns.run("ip", "addr", "add", "10.61.0.1/24", "dev", "ul0")
    ns.run("ip", "link", "set", "ul0", "up")


def _index(ns: Netns, name: str) -> int:
    return int(kstate.link(ns.name, name)["ifindex"])


def _vxlan(**section: object) -> dict[str, Any]:
    return {"interfaces": [{"name": "vx0", "type": "vxlan", "state": "up", "mtu": 1400,
                            "vxlan": {"id": 101, "base-iface": "ul0", "remote": "10.61.0.2",
                                      "local": "10.61.0.1", "destination-port": 4789,
                                      **section},
                            "ipv4": {"enabled": True, "address": [
                                {"ip": "10.62.0.1", "prefix-length": 24}]}}]}


def test_vxlan_is_created_shown_and_verified_in_nmstate_terms(node_ns: Netns) -> None:
    _underlay(node_ns)
    report = transaction.apply_state(_vxlan(), netns_path=node_ns.path)
    assert "created vxlan vx0" in report.changes
    link = kstate.link(node_ns.name, "vx0")
    data = link["linkinfo"]["info_data"]
    assert link["linkinfo"]["info_kind"] == "vxlan" and data["id"] == 101
    assert data["remote"] == "10.61.0.2" and data["local"] == "10.61.0.1"
    assert data["port"] == 4789 and data["link"] == "ul0" and link["mtu"] == 1400
    assert kstate.addresses(node_ns.name, "vx0") == ["10.62.0.1/24"]
    assert shown(node_ns, "vx0")["vxlan"] == {"base-iface": "ul0", "id": 101,
                                              "remote": "10.61.0.2", "local": "10.61.0.1",
                                              "destination-port": 4789}
    # the same policy again, and the id written as a string as nmstate accepts it
    assert transaction.apply_state(_vxlan(id="101"), netns_path=node_ns.path).changes == []
    show_applies_back_as_a_no_op(node_ns, {"vx0", "ul0"})


def test_vxlan_without_base_iface_gets_the_kernel_default_port(node_ns: Netns) -> None:
    transaction.apply_state({"interfaces": [{"name": "vx1", "type": "vxlan",
                                             "vxlan": {"id": 7, "remote": "fd00:61::2"}}]},
                            netns_path=node_ns.path)
    section = shown(node_ns, "vx1")["vxlan"]
    assert section == {"id": 7, "remote": "fd00:61::2", "destination-port": 8472}


def test_vxlan_creation_rolls_back_exactly(node_ns: Netns) -> None:
    _underlay(node_ns)
    changes = applies_and_rolls_back_exactly(node_ns, _vxlan())
    assert "created vxlan vx0" in changes
    assert kstate.link(node_ns.name, "vx0") is None


def test_vxlan_deletion_and_a_bridge_port_roll_back_exactly(node_ns: Netns) -> None:
    """A vxlan the node had, with its MAC, MTU, addresses (so the same IPv6 link-local)
    and a bridge it is a port of: deleted by a policy, it comes back as it was."""
    _underlay(node_ns)
    start = _vxlan()
    start["interfaces"] += [{"name": "brx", "type": "linux-bridge", "state": "up",
                             "bridge": {"port": [{"name": "vx0"}]}}]
    transaction.apply_state(start, netns_path=node_ns.path)
    node_ns.run("ip", "addr", "add", "fd00:62::1/64", "dev", "vx0")
    applies_and_rolls_back_exactly(node_ns, {"interfaces": [
        {"name": "vx0", "state": "absent"}]})


def test_vxlan_settings_cannot_change_in_place(node_ns: Netns) -> None:
    _underlay(node_ns)
    transaction.apply_state(_vxlan(), netns_path=node_ns.path)
    before = kstate.snapshot(node_ns.name)
    with pytest.raises(transaction.ApplyFailed) as failed:
        transaction.apply_state(_vxlan(id=102), netns_path=node_ns.path)
    message = str(failed.value)
    assert "cannot change the vxlan settings of vx0" in message and "vxlan.id" in message
    assert not kstate.snapshot_diff(before, kstate.snapshot(node_ns.name))


@pytest.mark.parametrize(("section", "message"), [
    ({"id": 1 << 24}, "interfaces[0].vxlan.id: 16777216 is not between 0 and 16777215"),
    ({"id": "x1"}, "interfaces[0].vxlan.id: 'x1' is not a non-negative integer"),
    ({"remote": "10.0.0"}, "interfaces[0].vxlan.remote: '10.0.0' is not an IP address"),
    ({"destination-port": 70000}, "interfaces[0].vxlan.destination-port: 70000 is not"),
    ({"group": "239.1.1.1"}, "interfaces[0].vxlan.group: unknown key"),
])
def test_bad_vxlan_sections_are_refused_before_any_change(
        node_ns: Netns, section: dict[str, object], message: str) -> None:
    before = kstate.snapshot(node_ns.name)
    with pytest.raises(schema.InvalidDesiredState) as bad:
        transaction.apply_state(_vxlan(**section), netns_path=node_ns.path)
    assert str(bad.value).startswith(message)
    assert not kstate.snapshot_diff(before, kstate.snapshot(node_ns.name))


def test_macvlan_on_the_node_is_created_shown_and_rolled_back_exactly(
        node_ns: Netns) -> None:
    _underlay(node_ns)
    state = {"interfaces": [{"name": "mv0", "type": "mac-vlan", "state": "up",
                             "mac-vlan": {"base-iface": "ul0", "mode": "vepa"},
                             "ipv4": {"enabled": True, "address": [
                                 {"ip": "10.61.0.9", "prefix-length": 24}]}}]}
    assert "created mac-vlan mv0" in applies_and_rolls_back_exactly(node_ns, state)
    transaction.apply_state(state, netns_path=node_ns.path)
    link = kstate.link(node_ns.name, "mv0")
    assert link["linkinfo"]["info_data"]["mode"] == "vepa" and link["link"] == "ul0"
    assert shown(node_ns, "mv0")["mac-vlan"] == {"base-iface": "ul0", "mode": "vepa",
                                                 "promiscuous": True}
    show_applies_back_as_a_no_op(node_ns, {"mv0", "ul0"})
    applies_and_rolls_back_exactly(node_ns, {"interfaces": [{"name": "mv0",
                                                             "state": "absent"}]})


def test_macvlan_promiscuous_false_is_the_kernels_nopromisc(node_ns: Netns) -> None:
    _underlay(node_ns)
    transaction.apply_state({"interfaces": [{"name": "mv1", "type": "mac-vlan",
                                             "mac-vlan": {"base-iface": "ul0",
                                                          "mode": "passthru",
                                                          "promiscuous": False}}]},
                            netns_path=node_ns.path)
    assert kstate.link(node_ns.name, "mv1")["linkinfo"]["info_data"].get("nopromisc")
    assert shown(node_ns, "mv1")["mac-vlan"]["promiscuous"] is False


@pytest.mark.parametrize(("state", "message"), [
    ({"name": "ul0", "type": "vxlan", "vxlan": {"id": 5}},
     "ul0 exists and is a veth, not a vxlan"),
    ({"name": "ul0", "type": "bond", "link-aggregation": {"mode": "balance-rr"}},
     "ul0 exists and is a veth, not a bond"),
    ({"name": "mv0", "type": "mac-vlan", "mac-vlan": {"base-iface": "ul0",
                                                      "mode": "private"}},
     "cannot change the mac-vlan settings of mv0 in place (mv0.mac-vlan.mode is vepa, "
     "wanted private)"),
])
def test_an_existing_link_of_another_type_or_fixed_settings_is_a_clear_error(
        node_ns: Netns, state: dict[str, Any], message: str) -> None:
    _underlay(node_ns)
    node_ns.run("ip", "link", "add", "link", "ul0", "name", "mv0", "type", "macvlan",
                "mode", "vepa")
    before = kstate.snapshot(node_ns.name)
    with pytest.raises(transaction.ApplyFailed) as failed:
        transaction.apply_state({"interfaces": [state]}, netns_path=node_ns.path)
    assert message in str(failed.value)
    assert not kstate.snapshot_diff(before, kstate.snapshot(node_ns.name))


@pytest.mark.parametrize(("kind", "state", "message"), [
    ("dummy", {"name": "dm0", "type": "dummy"},
     "cannot create dummy dm0: this kernel lacks dummy links (CONFIG_DUMMY)"),
    ("bond", {"name": "bd0", "type": "bond", "link-aggregation": {"mode": "active-backup"}},
     "cannot create bond bd0: this kernel lacks bond links (CONFIG_BONDING)"),
    ("vrf", {"name": "vr0", "type": "vrf", "vrf": {"route-table-id": 100}},
     "cannot create vrf vr0 (table 100): this kernel lacks vrf links (CONFIG_NET_VRF)"),
    ("ipvlan", {"name": "iv0", "type": "ipvlan", "ipvlan": {"base-iface": "ul0",
                                                            "mode": "l3"}},
     "cannot create ipvlan iv0 in l3 mode: this kernel has no ipvlan links (CONFIG_IPVLAN)"),
])
def test_a_type_this_kernel_lacks_is_a_clear_error(node_ns: Netns, kind: str,
                                                   state: dict[str, object],
                                                   message: str) -> None:
    _underlay(node_ns)
    extras: dict[str, dict[str, Any]] = {"vrf": {"vrf_table": 100},
                                         "ipvlan": {"link": _index(node_ns, "ul0")}}
    extra = extras.get(kind, {})
    if kernel_has(node_ns, kind, **extra):
        pytest.skip(f"this kernel has {kind} links: tested in "
                    "tests/kernel/test_node_types_tier.py")
    missing_feature_is_refused(node_ns, {"interfaces": [state]}, message)


def _features(**feature: bool) -> dict[str, object]:
    return {"interfaces": [{"name": "ul0", "ethtool": {"feature": feature}}]}


def test_ethtool_features_are_set_shown_and_rolled_back(node_ns: Netns) -> None:
    _underlay(node_ns)
    before = offloads(node_ns, "ul0")
    assert before["rx-gro"] is False and before["tx-checksum-ip-generic"] is True
    policy = _features(**{"rx-gro": True, "tx-checksum-ip-generic": False})
    changes = applies_and_rolls_back_exactly(node_ns, policy)
    assert "ul0: ethtool feature rx-gro on" in changes
    assert offloads(node_ns, "ul0") == before
    transaction.apply_state(policy, netns_path=node_ns.path)
    after = offloads(node_ns, "ul0")
    assert after["rx-gro"] is True and after["tx-checksum-ip-generic"] is False
    # the kernel turns off what depends on checksumming (TSO) by itself
    assert after["tx-tcp-segmentation"] is False
    assert shown(node_ns, "ul0")["ethtool"]["feature"]["rx-gro"] is True
    show_applies_back_as_a_no_op(node_ns, {"ul0"})
    # a policy that turns them back and fails restores the policy's features, exactly
    with pytest.raises(transaction.ApplyFailed):
        transaction.apply_state(
            {"interfaces": [{"name": "ul0", "ethtool": {"feature": {"rx-gro": False}}},
                            {"name": "nx0", "type": "veth"}]}, netns_path=node_ns.path)
    assert offloads(node_ns, "ul0") == after


def test_an_ethtool_feature_the_link_does_not_offer_is_a_clear_error(node_ns: Netns) -> None:
    _underlay(node_ns)
    before = offloads(node_ns, "ul0")
    with pytest.raises(transaction.ApplyFailed) as failed:
        transaction.apply_state(_features(**{"rx-gro": True, "rx-fcs": True,
                                             "highdma": False}), netns_path=node_ns.path)
    message = str(failed.value)
    assert "ul0 does not offer ethtool feature(s) rx-fcs to change" in message
    assert offloads(node_ns, "ul0") == before


def test_ethtool_feature_values_must_be_booleans(node_ns: Netns) -> None:
    _underlay(node_ns)
    with pytest.raises(schema.InvalidDesiredState) as bad:
        transaction.apply_state(_features(**{"rx-gro": "yes"}),  # type: ignore[arg-type]
                                netns_path=node_ns.path)
    assert str(bad.value) == "interfaces[0].ethtool.feature.rx-gro: expected a boolean, " \
                             "got string 'yes'"
