"""Node policies applied inside a namespace: verify, no-op re-apply, probe rollback, bad keys."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from multihome.node import current, schema, transaction
from support import kstate
from support.node_world import NodeWorld, make_world

IFF_UP = 0x1

pytestmark = pytest.mark.netns


@pytest.fixture
def world(netns_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[NodeWorld]:
    monkeypatch.setenv("MULTIHOME_NODE_DIR", str(tmp_path / "node"))
    yield make_world(netns_factory, tmp_path, random.randint(100, 199))


def _snapshot(w: NodeWorld) -> dict[str, Any]:
    """Links with their masters and flags, addresses and routes, read with iproute2."""
    links = {n: (lk.get("master"), lk.get("mtu"), "UP" in lk.get("flags", []),
                 lk.get("address"), lk.get("linkinfo", {}).get("info_kind"))
             for n, lk in kstate.links(w.node.name).items()}
    addrs = {n: (kstate.addresses(w.node.name, n), kstate.addresses(w.node.name, n, 6))
             for n in links}
    routes = [(r.get("dst"), r.get("dev"), r.get("gateway"), r.get("metric"))
              for family in (4, 6) for r in kstate.routes(w.node.name, family)]
    return {"links": links, "addresses": addrs, "routes": sorted(routes, key=str)}


def test_bridge_with_uplink_then_reapply_is_noop(world: NodeWorld) -> None:
    assert not world.pings_host()
    report = transaction.apply_state(world.bridge_policy("br0", ["up0"]),
                                netns_path=world.node.path)
    assert report.committed and report.changes
    assert report.probes == []  # the host did not answer before: that probe is not used
    assert kstate.link(world.node.name, "up0")["master"] == "br0"
    assert kstate.addresses(world.node.name, "br0") == [f"{world.net}.0.2/24"]
    assert world.pings_host()
    again = transaction.apply_state(world.bridge_policy("br0", ["up0"]),
                               netns_path=world.node.path)
    assert again.changes == []
    assert again.probes == [world.host]


def test_probe_failure_restores_everything_exactly(world: NodeWorld) -> None:
    policy = world.bridge_policy("br0", ["up0"])
    policy["routes"] = {"config": [{"destination": "10.99.0.0/16",
                                    "next-hop-address": world.host,
                                    "next-hop-interface": "br0"}]}
    transaction.apply_state(policy, netns_path=world.node.path)
    before = _snapshot(world)
    shown = current.show(world.node.path)
    # move the uplink off the bridge, and change more on the way: the host stops answering
    bad = world.bridge_policy("br0", [])
    bad["interfaces"][0]["mtu"] = 1400
    bad["interfaces"][0]["ipv4"]["address"] = [{"ip": "10.98.0.2", "prefix-length": 24}]
    bad["routes"] = {"config": [{"destination": "10.99.0.0/16", "state": "absent"}]}
    with pytest.raises(transaction.ApplyFailed) as failed:
        transaction.apply_state(bad, netns_path=world.node.path)
    assert "probe failed" in str(failed.value) and world.host in str(failed.value)
    assert failed.value.report.changes and failed.value.report.rolled_back
    assert _snapshot(world) == before
    assert current.show(world.node.path) == shown
    assert world.pings_host()


def test_bad_key_changes_nothing(world: NodeWorld) -> None:
    before = _snapshot(world)
    policy = world.bridge_policy("br0", ["up0"])
    policy["interfaces"][0]["bridge"]["port"] = [{"name": "up0"},
                                                 {"name": "up1", "vlan": {"mdoe": "trunk"}}]
    with pytest.raises(schema.InvalidDesiredState) as bad:
        transaction.apply_state(policy, netns_path=world.node.path)
    assert str(bad.value) == "interfaces[0].bridge.port[1].vlan.mdoe: unknown key"
    assert _snapshot(world) == before


def test_routes_config_and_absent(world: NodeWorld) -> None:
    transaction.apply_state(world.bridge_policy("br0", ["up0"]), netns_path=world.node.path)
    route = {"destination": "10.97.0.0/16", "next-hop-address": world.host,
             "next-hop-interface": "br0", "metric": 50}
    transaction.apply_state({"routes": {"config": [route]}}, netns_path=world.node.path)
    found = [r for r in kstate.routes(world.node.name) if r["dst"] == "10.97.0.0/16"]
    assert found and found[0]["gateway"] == world.host and found[0]["metric"] == 50
    transaction.apply_state({"routes": {"config": [{"destination": "10.97.0.0/16",
                                               "state": "absent"}]}},
                       netns_path=world.node.path)
    assert not [r for r in kstate.routes(world.node.name) if r["dst"] == "10.97.0.0/16"]


def test_cli_bad_key_reports_path(world: NodeWorld) -> None:
    policy = world.bridge_policy("br0", ["up0"])
    policy["interfaces"][0]["bridge"]["port"][0]["vlan"] = {"mdoe": "access"}
    proc = world.node_cmd("apply", "-f", world.write("bad.yml", policy))
    assert proc.returncode == 1
    assert "interfaces[0].bridge.port[0].vlan.mdoe: unknown key" in proc.stderr
    assert kstate.link(world.node.name, "br0") is None


def test_cli_show_apply_round_trip(world: NodeWorld) -> None:
    assert world.node_cmd("apply", "-f", world.write(
        "p.yml", world.bridge_policy("br0", ["up0"]))).returncode == 0
    shown = world.node_cmd("show", "-o", "yaml")
    assert shown.returncode == 0, shown.stderr
    state = yaml.safe_load(shown.stdout)
    assert {i["name"] for i in state["interfaces"]} == {"br0", "up0"}
    bridge = next(i for i in state["interfaces"] if i["name"] == "br0")
    assert bridge["bridge"]["port"] == [{"name": "up0"}]
    proc = world.node_cmd("apply", "-f", world.write("shown.yml", state))
    assert proc.returncode == 0, proc.stderr
    assert "no changes" in proc.stdout
    as_json = world.node_cmd("show", "-o", "json", "br0")
    assert '"name": "br0"' in as_json.stdout and "up0" in as_json.stdout


def test_cli_no_commit_times_out_and_rolls_back(world: NodeWorld) -> None:
    before = _snapshot(world)
    proc = world.node_cmd("apply", "-f", world.write("p.yml", world.bridge_policy(
        "br0", ["up0"])), "--no-commit", "--timeout", "8")
    assert proc.returncode == 0, proc.stderr
    assert "checkpoint" in proc.stdout
    assert kstate.link(world.node.name, "up0")["master"] == "br0"
    # well within the timeout even on a loaded machine (a CLI run takes a few seconds)
    second = world.node_cmd("apply", "-f", world.write("q.yml", {"interfaces": []}))
    assert second.returncode == 1 and "pending" in second.stderr
    # the timer drops the checkpoint only after the whole restore: waiting for br0 alone
    # raced with the restore's later steps on a loaded machine
    checkpoint_file = world.tmp / "node" / "checkpoint.json"
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and checkpoint_file.exists():
        time.sleep(0.5)
    assert not checkpoint_file.exists()
    assert _snapshot(world) == before


def test_cli_no_commit_then_commit_keeps_changes(world: NodeWorld) -> None:
    proc = world.node_cmd("apply", "-f", world.write("p.yml", world.bridge_policy(
        "br0", ["up0"])), "--no-commit", "--timeout", "3")
    assert proc.returncode == 0, proc.stderr
    assert world.node_cmd("commit").returncode == 0
    time.sleep(4)
    assert kstate.link(world.node.name, "up0")["master"] == "br0"
    assert world.node_cmd("rollback").returncode == 1  # nothing left to roll back


def test_cli_no_commit_then_rollback(world: NodeWorld) -> None:
    before = _snapshot(world)
    proc = world.node_cmd("apply", "-f", world.write("p.yml", world.bridge_policy(
        "br0", ["up0"])), "--no-commit")
    assert proc.returncode == 0, proc.stderr
    rb = world.node_cmd("rollback")
    assert rb.returncode == 0, rb.stderr
    assert "rolled back" in rb.stdout
    assert _snapshot(world) == before


def test_cli_probe_option_failure(world: NodeWorld) -> None:
    """A --probe target that answered before and not after causes a rollback."""
    transaction.apply_state(world.bridge_policy("br0", ["up0"]), netns_path=world.node.path)
    before = _snapshot(world)
    proc = world.node_cmd("apply", "-f", world.write("off.yml", world.bridge_policy(
        "br0", [], probes=False)), "--probe", world.host)
    assert proc.returncode == 1
    assert "earlier state was restored" in proc.stderr
    assert _snapshot(world) == before


def test_rollback_restores_created_deleted_and_moved_parts_exactly(world: NodeWorld) -> None:
    """A failing policy that creates a veth pair, takes ports off the bridge, changes MTU,
    both address families and routes of both families: everything is back as it was."""
    start = world.bridge_policy("br0", ["up0", "vx0"])
    start["interfaces"][0]["ipv6"] = {"enabled": True, "address": [
        {"ip": "fd00:71::2", "prefix-length": 64}]}
    start["interfaces"].insert(0, {"name": "vx0", "type": "veth", "state": "up",
                                   "veth": {"peer": "vx1"}})
    start["routes"] = {"config": [
        {"destination": "10.99.0.0/16", "next-hop-address": world.host,
         "next-hop-interface": "br0", "metric": 70},
        {"destination": "fd00:72::/64", "next-hop-interface": "br0", "metric": 80}]}
    transaction.apply_state(start, netns_path=world.node.path)
    assert kstate.link(world.node.name, "vx0")["master"] == "br0"
    before = _snapshot(world)
    shown = current.show(world.node.path)
    bad = world.bridge_policy("br0", ["nw0"])
    bad["interfaces"][0]["mtu"] = 1400
    bad["interfaces"][0]["ipv6"] = {"enabled": True, "address": [
        {"ip": "fd00:73::2", "prefix-length": 64}]}
    bad["interfaces"] += [{"name": "nw0", "type": "veth", "state": "up",
                           "veth": {"peer": "nw1"}},
                          {"name": "vx1", "state": "down"}]
    bad["routes"] = {"config": [
        {"destination": "10.99.0.0/16", "state": "absent"},
        {"destination": "fd00:74::/64", "next-hop-interface": "br0", "metric": 90}]}
    with pytest.raises(transaction.ApplyFailed) as failed:
        transaction.apply_state(bad, netns_path=world.node.path)
    changes = failed.value.report.changes
    assert "created veth nw0" in changes and "br0: port vx0 released" in changes
    assert "probe failed" in str(failed.value)
    assert kstate.link(world.node.name, "nw0") is None
    assert kstate.link(world.node.name, "nw1") is None
    assert _snapshot(world) == before
    assert current.show(world.node.path) == shown


def test_show_of_a_fuller_node_applies_back_as_a_no_op(world: NodeWorld) -> None:
    """show → apply changes nothing for bridges, veths, both families and static routes."""
    state = world.bridge_policy("br0", ["up0", "vx0"])
    state["interfaces"][0]["ipv6"] = {"enabled": True, "address": [
        {"ip": "fd00:75::2", "prefix-length": 64}]}
    state["interfaces"] += [{"name": "vx0", "type": "veth", "state": "up", "mtu": 1450,
                             "veth": {"peer": "vx1"}},
                            {"name": "vx1", "state": "down", "mac-address": "02:00:00:00:71:01"}]
    state["routes"] = {"config": [
        {"destination": "10.98.0.0/16", "next-hop-address": world.host,
         "next-hop-interface": "br0", "metric": 60},
        {"destination": "fd00:76::/64", "next-hop-interface": "br0", "metric": 61}]}
    transaction.apply_state(state, netns_path=world.node.path)
    shown = world.node_cmd("show", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    before = _snapshot(world)
    proc = world.node_cmd("apply", "-f", world.write("shown.json", yaml.safe_load(
        shown.stdout)))
    assert proc.returncode == 0, proc.stderr
    assert "no changes" in proc.stdout and "changed:" not in proc.stdout
    assert _snapshot(world) == before
    assert world.node_cmd("show", "-o", "json").stdout == shown.stdout


def _bridge_carrier(w: NodeWorld, bridge: str) -> bool:
    """The bridge's operstate is UP (it has a forwarding port with carrier); bounded wait:
    the kernel sets a new port forwarding asynchronously."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if kstate.snapshot(w.node.name)["links"][bridge]["operstate"] == "UP":
            return True
        time.sleep(0.1)
    return False


def test_a_listed_port_not_otherwise_described_is_brought_up(world: NodeWorld) -> None:
    """nmstate activates the ports of a bridge it configures: the uplink, down and named
    only as a port, is up afterwards, the bridge has carrier and the LAN answers."""
    world.node.run("ip", "link", "set", "up0", "down")
    assert not kstate.snapshot(world.node.name)["links"]["up0"]["flags"] & IFF_UP
    transaction.apply_state(world.bridge_policy("br0", ["up0"], probes=False),
                            netns_path=world.node.path)
    after = kstate.snapshot(world.node.name)["links"]
    assert after["up0"]["flags"] & IFF_UP and after["up0"]["master"] == "br0"
    assert _bridge_carrier(world, "br0")
    assert world.pings_host()


def test_ports_of_a_bridge_set_down_stay_as_they_are(world: NodeWorld) -> None:
    """Only an up bridge activates its ports: a bridge the policy sets down leaves them."""
    world.node.run("ip", "link", "set", "up0", "down")
    policy = world.bridge_policy("br0", ["up0"], probes=False)
    policy["interfaces"][0]["state"] = "down"
    transaction.apply_state(policy, netns_path=world.node.path)
    after = kstate.snapshot(world.node.name)["links"]
    assert after["up0"]["master"] == "br0" and not after["up0"]["flags"] & IFF_UP
    assert not after["br0"]["flags"] & IFF_UP


def test_show_reports_a_veth_peer_only_when_it_is_in_the_same_namespace(
        world: NodeWorld) -> None:
    """IFLA_LINK of a veth whose peer lives elsewhere is an ifindex of that other
    namespace: show omits the peer (as nmstate does), even when a local link has that
    very index and is itself a veth pointing back."""
    node, ext = world.node.name, world.ext.name
    base = random.randint(2000, 60000)
    # a local pair, then its peer moved out
    world.node.run("ip", "link", "add", "mv0", "type", "veth", "peer", "name", "mv1")
    world.node.run("ip", "link", "set", "mv1", "netns", ext)
    # two pairs crossing the namespaces whose indexes collide: in the node ia0 has index
    # base and ib0 base+1; their peers in ext have them the other way round
    subprocess.run(["ip", "link", "add", "ia0", "index", str(base), "netns", node, "type",
                    "veth", "peer", "name", "ia1", "index", str(base + 1), "netns", ext],
                   check=True)
    subprocess.run(["ip", "link", "add", "ib0", "index", str(base + 1), "netns", node,
                    "type", "veth", "peer", "name", "ib1", "index", str(base), "netns", ext],
                   check=True)
    # and a pair wholly inside the node, whose peers are reported
    world.node.run("ip", "link", "add", "lp0", "type", "veth", "peer", "name", "lp1")
    kernel = kstate.snapshot(node)["links"]
    assert {"mv0", "ia0", "ib0", "lp0", "lp1"} <= set(kernel) and "mv1" not in kernel
    proc = world.node_cmd("show", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    shown = {i["name"]: i for i in yaml.safe_load(proc.stdout)["interfaces"]}
    for name in ("mv0", "ia0", "ib0"):
        assert shown[name]["type"] == "veth" and "veth" not in shown[name], shown[name]
    assert shown["lp0"]["veth"] == {"peer": "lp1"} and shown["lp1"]["veth"] == {"peer": "lp0"}


def _bridge_by_hand(w: NodeWorld) -> None:
    """A bridge someone made with iproute2, not with multihome: the uplink and a local veth
    as ports, a non-default forward delay, an IPv4 address without broadcast and an IPv6
    one with DAD, and a static route through it."""
    run = w.node.run
    run("ip", "link", "add", "brk", "type", "bridge", "stp_state", "0", "forward_delay", "500")
    run("ip", "link", "add", "lp0", "type", "veth", "peer", "name", "lp1")
    for port in ("up0", "lp0"):
        run("ip", "link", "set", port, "master", "brk")
    run("ip", "link", "set", "lp0", "up")
    run("ip", "link", "add", "ot0", "type", "veth", "peer", "name", "ot1")  # off the bridge
    run("ip", "link", "set", "brk", "up")
    run("ip", "addr", "add", f"{w.net}.0.2/24", "dev", "brk")
    run("ip", "addr", "add", "fd00:81::2/64", "dev", "brk")
    run("ip", "route", "add", "10.96.0.0/16", "via", w.host, "dev", "brk", "metric", "40")
    assert _bridge_carrier(w, "brk") and w.pings_host()


def _fails_and_restores(w: NodeWorld, bad: dict[str, Any], *, probe: bool = True) -> None:
    """Apply `bad` and roll it back (a probe that fails, else `node rollback` after a
    --no-commit apply): the kernel state is exactly as before."""
    before = kstate.snapshot(w.node.name)
    if probe:
        bad["probes"] = {"ping": [w.host]}
        with pytest.raises(transaction.ApplyFailed) as failed:
            transaction.apply_state(bad, netns_path=w.node.path)
        assert "probe failed" in str(failed.value) and failed.value.report.rolled_back
    else:
        assert transaction.apply_state(bad, netns_path=w.node.path, commit=False).changes
        assert kstate.snapshot(w.node.name) != before
        assert transaction.rollback()[1]
    _bridge_carrier(w, "brk")  # let the port settle before comparing operstates
    diff = kstate.snapshot_diff(before, kstate.snapshot(w.node.name))
    assert not diff, "\n".join(diff)
    assert w.pings_host()


def test_rollback_of_a_deleted_bridge_restores_the_kernel_state(world: NodeWorld) -> None:
    """Deleting a bridge with ports, addresses and a route: the bridge comes back up, with
    its bridge id (MAC), options, addresses exactly (no broadcast it did not have), the same
    link-local address, its ports and route."""
    _bridge_by_hand(world)
    _fails_and_restores(world, {"interfaces": [{"name": "brk", "state": "absent"}]})


def test_rollback_of_bridge_stp_and_mtu_restores_the_kernel_state(world: NodeWorld) -> None:
    _bridge_by_hand(world)
    _fails_and_restores(world, {"interfaces": [{
        "name": "brk", "type": "linux-bridge", "mtu": 1400,
        "bridge": {"options": {"stp": {"enabled": True}}}}]}, probe=False)


def test_rollback_of_a_moved_address_restores_the_kernel_state(world: NodeWorld) -> None:
    _bridge_by_hand(world)
    _fails_and_restores(world, {"interfaces": [
        {"name": "brk", "type": "linux-bridge", "ipv4": {"enabled": True, "address": []}},
        {"name": "ot0", "type": "veth", "state": "up", "ipv4": {"enabled": True, "address": [
            {"ip": f"{world.net}.0.2", "prefix-length": 24}]}}]})
