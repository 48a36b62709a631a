"""Desired-state validation: every bad key or value is named by its path."""

from __future__ import annotations

from typing import Any

import pytest

from multihome.node import schema, verify


def _bridge(port: dict[str, Any]) -> dict[str, Any]:
    return {"interfaces": [{"name": "br0", "type": "linux-bridge",
                            "bridge": {"port": [{"name": "eth1"}, port]}}]}


def _bond(section: dict[str, Any]) -> dict[str, Any]:
    return {"interfaces": [{"name": "bd0", "type": "bond", "link-aggregation": section}]}


@pytest.mark.parametrize(("state", "message"), [
    (_bridge({"name": "p", "vlan": {"mdoe": "trunk"}}),
     "interfaces[0].bridge.port[1].vlan.mdoe: unknown key"),
    (_bridge({"name": "p", "vlan": {"mode": "trunk"}}),
     "interfaces[0].bridge.port[1].vlan.trunk-tags: required for mode trunk"),
    (_bridge({"name": "p", "vlan": {"mode": "access"}}),
     "interfaces[0].bridge.port[1].vlan.tag: required for mode access"),
    (_bridge({"name": "p", "vlan": {"mode": "trunk", "trunk-tags": [
        {"id-range": {"min": 20, "max": 10}}]}}),
     "interfaces[0].bridge.port[1].vlan.trunk-tags[0].id-range: needs min <= max"),
    ({"interfaces": [{"name": "x", "type": "team"}]},
     "interfaces[0].type: 'team' is not one of"),
    (_bond({"mode": "round-robin"}),
     "interfaces[0].link-aggregation.mode: 'round-robin' is not a bond mode"),
    (_bond({"options": {"miimom": 100}}),
     "interfaces[0].link-aggregation.options.miimom: unknown key"),
    (_bond({"options": {"miimon": -1}}),
     "interfaces[0].link-aggregation.options.miimon: -1 is not a non-negative integer"),
    (_bond({"options": {"num_grat_arp": 256}}),
     "interfaces[0].link-aggregation.options.num_grat_arp: 256 is not between 0 and 255"),
    (_bond({"options": {"ad_actor_sys_prio": 0}}),
     "interfaces[0].link-aggregation.options.ad_actor_sys_prio: 0 is not between 1 and"),
    (_bond({"options": {"miimon": 2**31}}),
     "interfaces[0].link-aggregation.options.miimon: 2147483648 is not between 0 and"),
    (_bond({"options": {"xmit_hash_policy": "layer9"}}),
     "interfaces[0].link-aggregation.options.xmit_hash_policy: 'layer9' is not one of"),
    (_bond({"options": {"use_carrier": "maybe"}}),
     "interfaces[0].link-aggregation.options.use_carrier: 'maybe' is not a boolean"),
    (_bond({"port": ["a"], "slaves": ["a"]}),
     "interfaces[0].link-aggregation.slaves: give the ports once"),
    (_bond({"port": ["a", "a"]}), "interfaces[0].link-aggregation.port: lists a port twice"),
    (_bond({"port": ["bd0"]}), "interfaces[0].link-aggregation.port: bd0 cannot be its own"),
    ({"interfaces": [{"name": "v", "type": "vrf", "vrf": {"route-table-id": 0}}]},
     "interfaces[0].vrf.route-table-id: 0 is not between 1 and 4294967295"),
    ({"interfaces": [{"name": "v", "type": "vrf", "vrf": {"table": 5}}]},
     "interfaces[0].vrf.table: unknown key"),
    ({"interfaces": [{"name": "v", "type": "vxlan", "vxlan": {"remote": "10.0.0.1"}}]},
     "interfaces[0].vxlan.id: required"),
    ({"interfaces": [{"name": "d", "type": "dummy", "dummy": {}}]},
     "interfaces[0].dummy: unknown key"),
    ({"interfaces": [{"name": "x", "mtu": True}]},
     "interfaces[0].mtu: expected a integer, got boolean True"),
    ({"interfaces": [{"name": "x", "type": "ethernet", "vlan": {}}]},
     "interfaces[0].vlan: unknown key"),
    ({"interfaces": [{"name": "x", "ipv4": {"address": [{"ip": "fd00::1",
                                                         "prefix-length": 64}]}}]},
     "interfaces[0].ipv4.address[0].ip: fd00::1 is not an ipv4 address"),
    ({"interfaces": [{"name": "v", "type": "vlan", "vlan": {"id": 5}}]},
     "interfaces[0].vlan.base-iface: required"),
    ({"routes": {"config": [{"destination": "10.0.0.0/8"}]}},
     "routes.config[0].next-hop-interface: required"),
    ({"dns": {}}, "dns: unknown key"),
    ({"interfaces": [{"name": "a"}, {"name": "a"}]}, "interfaces[1].name: a is listed twice"),
    ({"probes": {"ping": ["gateway"]}}, "probes.ping[0]: 'gateway' is not an IP address"),
])
def test_rejected_with_path(state: dict[str, Any], message: str) -> None:
    with pytest.raises(schema.InvalidDesiredState) as bad:
        schema.validate(state)
    assert str(bad.value).startswith(message)


def test_valid_state_and_trunk_ranges() -> None:
    state = _bridge({"name": "p", "vlan": {"mode": "trunk", "enable-native": True, "tag": 5,
                                           "trunk-tags": [{"id": 7},
                                                          {"id-range": {"min": 10, "max": 12}}]}})
    assert schema.validate(state) == state
    vlan = state["interfaces"][0]["bridge"]["port"][1]["vlan"]
    assert schema.trunk_ids(vlan) == [7, 10, 11, 12]


def test_route_matching_uses_only_named_fields() -> None:
    have = {"destination": "10.1.0.0/16", "next-hop-interface": "br0",
            "next-hop-address": "10.0.0.1", "metric": 0, "table-id": 254}
    assert verify.route_matches({"destination": "10.1.0.0/16", "state": "absent"}, have)
    assert not verify.route_matches({"destination": "10.2.0.0/16"}, have)
    assert verify.route_matches({"next-hop-interface": "br0"}, have)


def test_bond_spellings_nmstate_accepts_are_one_model() -> None:
    """Modes by number or alias, enum options by number, integers as strings, and the
    older `slaves` list all read as the canonical spelling `node show` prints."""
    loose = schema.parse(_bond({"mode": "4", "slaves": ["p1", "p0"], "options": {
        "miimon": "100", "lacp_rate": 1, "xmit_hash_policy": "layer3+4",
        "use_carrier": True}}))
    strict = schema.parse(_bond({"mode": "802.3ad", "port": ["p1", "p0"], "options": {
        "miimon": 100, "lacp_rate": "fast", "xmit_hash_policy": "layer3+4",
        "use_carrier": True}}))
    assert loose == strict
    assert schema.parse(_bond({"mode": "lacp"})).interfaces[0].to_nmstate()[
        "link-aggregation"] == {"mode": "802.3ad"}
    assert strict.to_nmstate()["interfaces"][0]["link-aggregation"] == {
        "mode": "802.3ad", "options": {"miimon": 100, "lacp_rate": "fast",
                                       "xmit_hash_policy": "layer3+4", "use_carrier": True},
        "port": ["p1", "p0"]}
