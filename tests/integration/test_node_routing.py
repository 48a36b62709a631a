"""Policy routing from node policies: route rules and routes in tables other than main,
applied, shown, removed, and rolled back to the kernel's exact state."""

from __future__ import annotations

from typing import Any

import pytest

from multihome.node import current, schema, transaction
from support import kstate
from support.netns import Netns
from support.node_types import applies_and_rolls_back_exactly

pytestmark = pytest.mark.netns


def _uplink(ns: Netns) -> None:
    ns.run("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
    ns.run("ip", "link", "set", "up1", "up")
    ns.run("ip", "link", "set", "up0", "up")
    ns.run("ip", "addr", "add", "10.71.0.1/24", "dev", "up0")
    ns.run("ip", "addr", "add", "fd00:71::1/64", "dev", "up0")


def _table_route(table: int = 100, dst: str = "10.72.0.0/16") -> dict[str, Any]:
    return {"destination": dst, "next-hop-interface": "up0", "next-hop-address": "10.71.0.2",
            "table-id": table, "metric": 5}


def _policy(*rules: dict[str, Any], routes: tuple[dict[str, Any], ...] = ()
            ) -> dict[str, Any]:
    return {"routes": {"config": list(routes)}, "route-rules": {"config": list(rules)}}


RULES = ({"ip-from": "10.73.0.0/16", "priority": 1100, "route-table": 100},
         {"ip-to": "fd00:74::/64", "priority": 1101, "route-table": 101},
         {"iif": "up0", "fwmark": "0x10", "fwmask": "0xff", "family": "ipv4",
          "priority": 1102, "route-table": 100},
         {"ip-from": "10.75.0.1", "priority": 1103, "action": "blackhole"})


def _kernel_rules(ns: Netns, family: int = 4) -> list[dict[str, Any]]:
    return [r for r in kstate.run_json(ns.name, ["ip", f"-{family}", "-j", "rule", "show"])
            if r.get("priority") not in (0, 32766, 32767)]


def test_route_rules_and_a_table_route_are_applied_and_shown(node_ns: Netns) -> None:
    _uplink(node_ns)
    report = transaction.apply_state(_policy(*RULES, routes=(_table_route(),)),
                                     netns_path=node_ns.path)
    assert len([c for c in report.changes if c.startswith("route rule")]) == 4
    v4 = {r["priority"]: r for r in _kernel_rules(node_ns)}
    assert v4[1100]["src"] == "10.73.0.0" and v4[1100]["srclen"] == 16
    assert v4[1100]["table"] == "100"
    assert v4[1102]["iif"] == "up0" and v4[1102]["fwmark"] == "0x10"
    assert v4[1102]["fwmask"] == "0xff"
    assert v4[1103]["action"] == "blackhole" and v4[1103]["src"] == "10.75.0.1"
    v6 = {r["priority"]: r for r in _kernel_rules(node_ns, 6)}
    assert v6[1101]["dst"] == "fd00:74::" and v6[1101]["table"] == "101"
    table = kstate.run_json(node_ns.name, ["ip", "-j", "route", "show", "table", "100"])
    assert [(r["dst"], r["gateway"], r["metric"]) for r in table] == [
        ("10.72.0.0/16", "10.71.0.2", 5)]
    state = current.show(node_ns.path, names=set())
    shown = state["route-rules"]["config"]
    assert {"family": "ipv4", "ip-from": "10.73.0.0/16", "priority": 1100,
            "route-table": 100} in shown
    assert {"family": "ipv4", "priority": 1102, "route-table": 100, "fwmark": "0x10",
            "fwmask": "0xff", "iif": "up0"} in shown
    assert {"family": "ipv4", "ip-from": "10.75.0.1/32", "priority": 1103,
            "action": "blackhole"} in shown
    assert {"destination": "10.72.0.0/16", "next-hop-interface": "up0",
            "next-hop-address": "10.71.0.2", "metric": 5, "table-id": 100} \
        in state["routes"]["config"]
    # the same again, and what show printed, change nothing
    again = transaction.apply_state(_policy(*RULES, routes=(_table_route(),)),
                                    netns_path=node_ns.path)
    assert again.changes == []
    assert transaction.apply_state({"routes": {"config": state["routes"]["config"]},
                                    "route-rules": state["route-rules"]},
                                   netns_path=node_ns.path).changes == []


def test_a_rule_without_priority_or_table_looks_up_main_at_the_kernels_priority(
        node_ns: Netns) -> None:
    transaction.apply_state(_policy({"ip-to": "10.76.0.0/16"}), netns_path=node_ns.path)
    [rule] = _kernel_rules(node_ns)
    assert rule["priority"] == 32765 and rule["table"] == "main"
    # applied again it is found (whatever priority it got), not added twice
    assert transaction.apply_state(_policy({"ip-to": "10.76.0.0/16"}),
                                   netns_path=node_ns.path).changes == []


def test_absent_rules_match_as_wildcards(node_ns: Netns) -> None:
    _uplink(node_ns)
    transaction.apply_state(_policy(*RULES), netns_path=node_ns.path)
    report = transaction.apply_state(_policy({"route-table": 100, "state": "absent"}),
                                     netns_path=node_ns.path)
    assert len(report.changes) == 2
    assert sorted(r["priority"] for r in _kernel_rules(node_ns)) == [1103]
    assert [r["priority"] for r in _kernel_rules(node_ns, 6)] == [1101]


def test_rules_and_table_routes_roll_back_exactly(node_ns: Netns) -> None:
    """Added, removed and replaced rules and table routes: after the rollback the kernel
    holds exactly the rules and routes it held."""
    _uplink(node_ns)
    node_ns.run("ip", "rule", "add", "from", "10.77.0.0/16", "table", "200", "pref", "900")
    node_ns.run("ip", "-6", "rule", "add", "to", "fd00:77::/64", "prohibit", "pref", "901")
    node_ns.run("ip", "route", "add", "10.78.0.0/16", "via", "10.71.0.2", "table", "200")
    applies_and_rolls_back_exactly(node_ns, _policy(
        *RULES, {"priority": 900, "state": "absent"},
        {"ip-to": "fd00:77::/64", "state": "absent"},
        routes=(_table_route(), _table_route(300, "10.79.0.0/16"),
                {"destination": "10.78.0.0/16", "table-id": 200, "state": "absent"})))


@pytest.mark.parametrize(("rule", "message"), [
    ({"ip-from": "10.0.0.0/33", "route-table": 5}, "route-rules.config[0].ip-from: "),
    ({"ip-from": "fd00::/64", "family": "ipv4"},
     "route-rules.config[0].ip-from: fd00::/64 is not an ipv4 prefix"),
    ({"ip-from": "10.0.0.0/8", "ip-to": "fd00::/64"},
     "route-rules.config[0].ip-to: ip-from and ip-to are of different families"),
    ({"route-table": 5}, "route-rules.config[0]: give ip-from, ip-to or family"),
    ({"family": "ipv4", "fwmask": 255}, "route-rules.config[0].fwmask: only with fwmark"),
    ({"family": "ipv4", "fwmark": "0xzz"}, "route-rules.config[0].fwmark: '0xzz' is not"),
    ({"family": "ipv4", "action": "drop"}, "route-rules.config[0].action: 'drop' is not"),
    ({"family": "ipv4", "action": "prohibit", "route-table": 5},
     "route-rules.config[0].action: give either an action or a route-table"),
    ({"family": "ipv4", "iif": "a/b"}, "route-rules.config[0].iif: 'a/b' is not a valid"),
    ({"family": "ipv4", "priority": -1}, "route-rules.config[0].priority: -1 is not"),
    ({"family": "ipv4", "table": 5}, "route-rules.config[0].table: unknown key"),
])
def test_bad_rules_are_refused_before_any_change(node_ns: Netns, rule: dict[str, Any],
                                                 message: str) -> None:
    before = kstate.snapshot(node_ns.name)
    with pytest.raises(schema.InvalidDesiredState) as bad:
        transaction.apply_state(_policy(rule), netns_path=node_ns.path)
    assert str(bad.value).startswith(message), str(bad.value)
    assert not kstate.snapshot_diff(before, kstate.snapshot(node_ns.name))
