"""The typed node state: one model per interface type, nmstate in and out unchanged."""

from __future__ import annotations

from typing import Any

from multihome.node import schema, state

SHOWN: dict[str, Any] = {
    "interfaces": [
        {"name": "br0", "type": "linux-bridge", "state": "up", "mtu": 1500,
         "mac-address": "02:00:00:00:00:01",
         "bridge": {"options": {"stp": {"enabled": False}},
                    "port": [{"name": "p0", "vlan": {"mode": "trunk", "trunk-tags": [{"id": 7}],
                                                     "enable-native": True, "tag": 5}}]},
         "ipv4": {"enabled": True, "address": [{"ip": "10.0.0.2", "prefix-length": 24}]},
         "ipv6": {"enabled": False, "address": []}},
        {"name": "v7", "type": "vlan", "state": "up", "mtu": 1500,
         "mac-address": "02:00:00:00:00:02", "vlan": {"base-iface": "eth1", "id": 7},
         "ipv4": {"enabled": False, "address": []}, "ipv6": {"enabled": False, "address": []}},
        {"name": "eth1", "type": "ethernet", "state": "down", "mtu": 9000,
         "mac-address": "02:00:00:00:00:03",
         "ipv4": {"enabled": False, "address": []}, "ipv6": {"enabled": False, "address": []}},
    ],
    "routes": {"config": [{"destination": "10.9.0.0/16", "next-hop-interface": "br0",
                           "next-hop-address": "10.0.0.1", "metric": 0, "table-id": 254}],
               "running": []},
}


def test_shown_state_round_trips_through_the_models_in_key_order() -> None:
    typed = state.from_nmstate(SHOWN)
    assert [type(i) for i in typed.interfaces] == [state.LinuxBridge, state.Vlan,
                                                   state.Interface]
    out = typed.to_nmstate()
    assert out == SHOWN
    assert list(out["interfaces"][0]) == list(SHOWN["interfaces"][0])


def test_two_spellings_of_the_same_port_vlans_are_equal() -> None:
    ranged = state.PortVlan.from_nmstate(
        {"mode": "trunk", "trunk-tags": [{"id-range": {"min": 7, "max": 8}}],
         "enable-native": True, "tag": 5})
    listed = state.PortVlan.from_nmstate(
        {"mode": "trunk", "tag": 5, "enable-native": True,
         "trunk-tags": [{"id": 8}, {"id": 7}]})
    assert ranged == listed
    assert state.PortVlan.from_nmstate({"tag": 3}) == state.PortVlan(mode="access", tag=3)


def test_partial_desired_state_compares_only_what_it_names() -> None:
    have = state.from_nmstate(SHOWN)
    want = schema.parse({"interfaces": [{"name": "br0", "mtu": 1500,
                                         "mac-address": "02:00:00:00:00:01"}]})
    assert want.interfaces[0].differences(have.interface("br0")) == []
    want = schema.parse({"interfaces": [
        {"name": "br0", "type": "linux-bridge", "bridge": {"port": [{"name": "p1"}]},
         "ipv4": {"address": [{"ip": "10.0.0.3", "prefix-length": 24}]}},
        {"name": "v7", "type": "vlan", "vlan": {"base-iface": "eth2", "id": 7}}]})
    br0, v7 = want.interfaces
    assert br0.differences(have.interface("br0")) == [
        "br0.ipv4 addresses are ['10.0.0.2/24'], wanted ['10.0.0.3/24']",
        "br0.bridge.port is ['p0'], wanted ['p1']"]
    assert v7.differences(have.interface("v7")) == ["v7.vlan.base-iface is eth1, wanted eth2"]


def test_absent_virtual_interface_must_be_gone_but_a_nic_may_stay() -> None:
    have = state.from_nmstate(SHOWN)
    gone = state.Interface(name="br0", state="absent")
    assert gone.differences(have.interface("br0")) == ["br0 still exists"]
    assert state.Interface(name="eth1", state="absent").differences(
        have.interface("eth1")) == []


NEW_TYPES: dict[str, Any] = {
    "interfaces": [
        {"name": "bd0", "type": "bond", "state": "up", "mtu": 1500,
         "link-aggregation": {"mode": "802.3ad", "options": {"lacp_rate": "fast",
                                                              "miimon": 100},
                              "port": ["p0", "p1"]},
         "ethtool": {"feature": {"rx-gro": True}}},
        {"name": "vr0", "type": "vrf", "vrf": {"port": ["p2"], "route-table-id": 100}},
        {"name": "vx0", "type": "vxlan", "vxlan": {"base-iface": "p3", "id": 7,
                                                   "remote": "fd00::1",
                                                   "destination-port": 4789}},
        {"name": "iv0", "type": "ipvlan", "ipvlan": {"base-iface": "p3", "mode": "l3s"}},
        {"name": "dm0", "type": "dummy"},
    ],
    "routes": {"config": [{"destination": "10.9.0.0/16", "next-hop-interface": "p2",
                           "table-id": 100}], "running": []},
    "route-rules": {"config": [{"family": "ipv4", "ip-from": "10.1.0.0/16",
                                "priority": 100, "route-table": 100, "fwmark": "0x10",
                                "fwmask": "0xff"},
                               {"family": "ipv6", "ip-to": "fd00::/8",
                                "action": "prohibit", "state": "absent"}]},
    "dns-resolver": {"config": {"server": ["192.0.2.1"], "search": ["example.org"]}},
}


def test_the_new_types_round_trip_through_the_models() -> None:
    typed = schema.parse(NEW_TYPES)
    assert [type(i) for i in typed.interfaces] == [state.Bond, state.Vrf, state.Vxlan,
                                                   state.IpVlan, state.Dummy]
    assert typed.to_nmstate() == NEW_TYPES


def test_a_rule_to_add_is_another_rule_with_one_more_selector() -> None:
    want = state.RouteRule.from_nmstate({"ip-from": "10.1.0.0/16", "route-table": 100})
    have = state.RouteRule.from_nmstate({"ip-from": "10.1.0.0/16", "route-table": 100,
                                         "priority": 5})
    more = state.RouteRule.from_nmstate({"ip-from": "10.1.0.0/16", "route-table": 100,
                                         "iif": "eth0", "priority": 6})
    assert want.matches(have) and not want.matches(more)
    gone = state.RouteRule.from_nmstate({"route-table": 100, "state": "absent"})
    assert gone.matches(have) and gone.matches(more)
    # no table and no action: the main table, as nmstate
    assert state.RouteRule.from_nmstate({"family": "ipv4"}).route_table == 254
