"""Node policies with the interface types the host kernel lacks: dummy, bond and vrf
(apply, verify, `node show`, and rollback to the kernel's exact state).

Debian-kernel tier only; on the host, tests/integration/test_node_types.py checks the
clear error for each missing type instead.
"""

from __future__ import annotations

from typing import Any

import pytest

from multihome.node import transaction
from support import kstate
from support.netns import Netns
from support.node_types import (
    applies_and_rolls_back_exactly,
    kernel_has,
    show_applies_back_as_a_no_op,
    shown,
)

pytestmark = pytest.mark.netns


def _ports(ns: Netns, *names: str, far: Netns | None = None) -> None:
    """Veth pairs `name`/`name`+"x", up; the far ends in `far` when given (carrier)."""
    for name in names:
        ns.run("ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}x")
        if far is not None:
            ns.run("ip", "link", "set", f"{name}x", "netns", far.name)
            far.run("ip", "link", "set", f"{name}x", "up")
        else:
            ns.run("ip", "link", "set", f"{name}x", "up")
        ns.run("ip", "link", "set", name, "up")


# -- dummy ---------------------------------------------------------------------------


def test_dummy_is_created_shown_and_rolled_back_exactly(node_ns: Netns) -> None:
    assert kernel_has(node_ns, "dummy"), "the tier's kernel lacks dummy links"
    state = {"interfaces": [{"name": "dm0", "type": "dummy", "state": "up", "mtu": 9000,
                             "mac-address": "02:00:00:00:d0:01",
                             "ipv4": {"enabled": True, "address": [
                                 {"ip": "10.63.0.1", "prefix-length": 32}]},
                             "ipv6": {"enabled": True, "address": [
                                 {"ip": "fd00:63::1", "prefix-length": 128}]}}]}
    assert "created dummy dm0" in applies_and_rolls_back_exactly(node_ns, state)
    transaction.apply_state(state, netns_path=node_ns.path)
    link = kstate.link(node_ns.name, "dm0")
    assert link["linkinfo"]["info_kind"] == "dummy" and link["mtu"] == 9000
    assert link["address"] == "02:00:00:00:d0:01"
    assert shown(node_ns, "dm0")["type"] == "dummy"
    show_applies_back_as_a_no_op(node_ns, {"dm0"})
    # deleted, it comes back with its MAC (so its link-local address) and addresses
    applies_and_rolls_back_exactly(node_ns, {"interfaces": [{"name": "dm0",
                                                             "state": "absent"}]})


# -- bond ----------------------------------------------------------------------------


def _bond(mode: str = "active-backup", ports: tuple[str, ...] = ("bp0", "bp1"),
          **options: Any) -> dict[str, Any]:
    return {"interfaces": [{"name": "bd0", "type": "bond", "state": "up",
                            "link-aggregation": {"mode": mode, "port": list(ports),
                                                 "options": {"miimon": 100, **options}},
                            "ipv4": {"enabled": True, "address": [
                                {"ip": "10.64.0.1", "prefix-length": 24}]}}]}


def test_bond_with_ports_and_options_carries_traffic(node_ns: Netns,
                                                      netns_factory: Any) -> None:
    assert kernel_has(node_ns, "bond"), "the tier's kernel lacks bonding"
    peer: Netns = netns_factory("mhbp")
    _ports(node_ns, "bp0", "bp1", far=peer)
    # the far side: its two ends in a bridge with the address the bond talks to
    peer.run("ip", "link", "add", "pbr", "type", "bridge")
    for dev in ("bp0x", "bp1x"):
        peer.run("ip", "link", "set", dev, "master", "pbr")
    peer.run("ip", "link", "set", "pbr", "up")
    peer.run("ip", "addr", "add", "10.64.0.2/24", "dev", "pbr")
    report = transaction.apply_state(_bond(primary="bp1", xmit_hash_policy="layer2+3"),
                                     netns_path=node_ns.path)
    assert "created bond bd0" in report.changes
    link = kstate.link(node_ns.name, "bd0")
    data = link["linkinfo"]["info_data"]
    assert data["mode"] == "active-backup" and data["miimon"] == 100
    assert data["primary"] == "bp1" and data["xmit_hash_policy"] == "layer2+3"
    for port in ("bp0", "bp1"):
        assert kstate.link(node_ns.name, port)["master"] == "bd0"
    section = shown(node_ns, "bd0")["link-aggregation"]
    assert section["mode"] == "active-backup" and section["port"] == ["bp0", "bp1"]
    assert section["options"]["miimon"] == 100 and section["options"]["primary"] == "bp1"
    assert section["options"]["xmit_hash_policy"] == "layer2+3"
    assert kstate.ping(node_ns.name, "10.64.0.2")
    show_applies_back_as_a_no_op(node_ns, {"bd0", "bp0", "bp1"})


def test_bond_creation_rolls_back_exactly(node_ns: Netns) -> None:
    """The ports get their MACs, MTUs, up state and addresses back when the bond that
    took them is removed again."""
    _ports(node_ns, "bp0", "bp1")
    node_ns.run("ip", "addr", "add", "fd00:64::5/64", "dev", "bp0")
    node_ns.run("ip", "addr", "add", "10.64.9.5/24", "dev", "bp1")
    changes = applies_and_rolls_back_exactly(node_ns, _bond(mode="balance-rr"))
    assert "created bond bd0" in changes and "bd0: port bp1 attached" in changes


def test_bond_mode_ports_and_options_changes_roll_back_exactly(node_ns: Netns) -> None:
    _ports(node_ns, "bp0", "bp1", "bp2")
    transaction.apply_state(_bond(), netns_path=node_ns.path)
    changes = applies_and_rolls_back_exactly(node_ns, _bond(
        mode="802.3ad", ports=("bp1", "bp2"), lacp_rate="fast", miimon=200))
    assert "bd0: mode active-backup -> 802.3ad" in changes
    assert "bd0: port bp2 attached" in changes


def test_bond_deletion_rolls_back_exactly(node_ns: Netns) -> None:
    _ports(node_ns, "bp0", "bp1")
    transaction.apply_state(_bond(mode="balance-xor", xmit_hash_policy="layer3+4"),
                            netns_path=node_ns.path)
    applies_and_rolls_back_exactly(node_ns, {"interfaces": [{"name": "bd0",
                                                             "state": "absent"}]})


def test_an_option_the_mode_does_not_allow_is_a_clear_error(node_ns: Netns) -> None:
    _ports(node_ns, "bp0", "bp1")
    before = kstate.snapshot(node_ns.name)
    with pytest.raises(transaction.ApplyFailed) as failed:
        transaction.apply_state(_bond(lacp_rate="fast"), netns_path=node_ns.path)
    assert "lacp_rate" in str(failed.value)
    assert "earlier state was restored" in str(failed.value)
    assert not kstate.snapshot_diff(before, kstate.snapshot(node_ns.name))


def test_a_new_bond_needs_a_mode(node_ns: Netns) -> None:
    with pytest.raises(transaction.ApplyFailed) as failed:
        transaction.apply_state({"interfaces": [{"name": "bd0", "type": "bond"}]},
                                netns_path=node_ns.path)
    assert "link-aggregation.mode is required for a new bond" in str(failed.value)
    assert kstate.link(node_ns.name, "bd0") is None


# -- vrf ------------------------------------------------------------------------------


def _vrf(table: int = 1001, ports: tuple[str, ...] = ("vp0",)) -> dict[str, Any]:
    return {"interfaces": [{"name": "vr0", "type": "vrf", "state": "up",
                            "vrf": {"port": list(ports), "route-table-id": table}}],
            "routes": {"config": [{"destination": "10.66.0.0/16", "next-hop-interface": "vp0",
                                   "next-hop-address": "10.65.0.2", "table-id": table}]}}


def test_vrf_takes_its_ports_routes_into_its_table(node_ns: Netns) -> None:
    assert kernel_has(node_ns, "vrf", vrf_table=100), "the tier's kernel lacks vrf"
    _ports(node_ns, "vp0")
    node_ns.run("ip", "addr", "add", "10.65.0.1/24", "dev", "vp0")
    transaction.apply_state(_vrf(), netns_path=node_ns.path)
    link = kstate.link(node_ns.name, "vr0")
    assert link["linkinfo"]["info_data"]["table"] == 1001
    assert kstate.link(node_ns.name, "vp0")["master"] == "vr0"
    in_table = kstate.run_json(node_ns.name, ["ip", "-j", "route", "show", "table", "1001"])
    assert {"10.65.0.0/24", "10.66.0.0/16"} <= {r["dst"] for r in in_table}
    assert shown(node_ns, "vr0")["vrf"] == {"port": ["vp0"], "route-table-id": 1001}
    show_applies_back_as_a_no_op(node_ns, {"vr0", "vp0"})


def test_vrf_creation_and_deletion_roll_back_exactly(node_ns: Netns) -> None:
    _ports(node_ns, "vp0", "vp1")
    node_ns.run("ip", "addr", "add", "10.65.0.1/24", "dev", "vp0")
    node_ns.run("ip", "addr", "add", "fd00:65::1/64", "dev", "vp0")
    node_ns.run("ip", "route", "add", "10.67.0.0/16", "via", "10.65.0.2", "dev", "vp0")
    applies_and_rolls_back_exactly(node_ns, _vrf())
    transaction.apply_state(_vrf(ports=("vp0", "vp1")), netns_path=node_ns.path)
    applies_and_rolls_back_exactly(node_ns, {"interfaces": [{"name": "vr0",
                                                             "state": "absent"}]})


def test_vrf_table_cannot_change(node_ns: Netns) -> None:
    _ports(node_ns, "vp0")
    node_ns.run("ip", "addr", "add", "10.65.0.1/24", "dev", "vp0")
    transaction.apply_state(_vrf(), netns_path=node_ns.path)
    with pytest.raises(transaction.ApplyFailed) as failed:
        transaction.apply_state(_vrf(table=1002), netns_path=node_ns.path)
    assert "cannot change the route table of vrf vr0 from 1001 to 1002" in str(failed.value)
    assert kstate.link(node_ns.name, "vr0")["linkinfo"]["info_data"]["table"] == 1001


# -- ipvlan ---------------------------------------------------------------------------


def test_ipvlan_on_the_node_is_created_shown_and_rolled_back_exactly(node_ns: Netns) -> None:
    _ports(node_ns, "ib0")
    state = {"interfaces": [{"name": "iv0", "type": "ipvlan", "state": "up",
                             "ipvlan": {"base-iface": "ib0", "mode": "l3"},
                             "ipv4": {"enabled": True, "address": [
                                 {"ip": "10.68.0.1", "prefix-length": 24}]}}]}
    assert "created ipvlan iv0" in applies_and_rolls_back_exactly(node_ns, state)
    transaction.apply_state(state, netns_path=node_ns.path)
    link = kstate.link(node_ns.name, "iv0")
    assert link["linkinfo"]["info_data"]["mode"] == "l3" and link["link"] == "ib0"
    assert shown(node_ns, "iv0")["ipvlan"] == {"base-iface": "ib0", "mode": "l3"}
    show_applies_back_as_a_no_op(node_ns, {"iv0", "ib0"})
    applies_and_rolls_back_exactly(node_ns, {"interfaces": [{"name": "iv0",
                                                             "state": "absent"}]})
