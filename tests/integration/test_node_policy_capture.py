"""NNCPs with nmpolicy captures, enacted on a namespace playing the node: "a bridge on
whatever interface has the default route", captured states in the NNCE, capture errors."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import kstate
from support.node_world import NodeWorld, make_world, nncp

pytestmark = pytest.mark.netns

EXAMPLE = Path(__file__).parents[2] / "examples" / "bridge-on-default-gw-policy.yml"

# kubernetes-nmstate's "linux bridge on the default gateway interface" example
BRIDGE_ON_DEFAULT_GW_CAPTURE = {
    "default-gw": 'routes.running.destination=="0.0.0.0/0"',
    "base-iface": "interfaces.name==capture.default-gw.routes.running.0.next-hop-interface",
    "bridge-routes": 'capture.default-gw | routes.running.next-hop-interface:="br1"',
}


def bridge_on_default_gw(host: str) -> dict[str, Any]:
    return {
        "interfaces": [
            {"name": "br1", "type": "linux-bridge", "state": "up",
             "ipv4": "{{ capture.base-iface.interfaces.0.ipv4 }}",
             "bridge": {"options": {"stp": {"enabled": False}},
                        "port": [{"name": "{{ capture.base-iface.interfaces.0.name }}"}]}},
            {"name": "{{ capture.base-iface.interfaces.0.name }}", "state": "up",
             "ipv4": {"enabled": False}},
        ],
        "routes": {"config": "{{ capture.bridge-routes.routes.running }}"},
        "probes": {"ping": [host]},
    }


def with_capture(manifest: dict[str, Any], captures: dict[str, str]) -> dict[str, Any]:
    manifest["spec"]["capture"] = captures
    return manifest


@pytest.fixture
def world(netns_factory: Any, tmp_path: Path) -> Iterator[NodeWorld]:
    w = make_world(netns_factory, tmp_path, random.randint(200, 250))
    # the node reaches the LAN through up0: its address and default route live there
    w.node.run("ip", "addr", "add", f"{w.net}.0.2/24", "dev", "up0")
    w.node.run("ip", "route", "add", "default", "via", w.host, "dev", "up0")
    yield w


def _nnce(world: NodeWorld, name: str) -> dict[str, Any]:
    proc = world.mh("get", "nnce", name, "-o", "yaml")
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = yaml.safe_load(proc.stdout)
    return out


def test_bridge_on_whatever_interface_has_the_default_route(world: NodeWorld) -> None:
    """examples/bridge-on-default-gw-policy.yml as it is (its probe: the default gateway)."""
    node = world.node.name
    mac = kstate.link(node, "up0")["address"]
    applied = world.mh("apply", "-f", str(EXAMPLE))
    assert applied.returncode == 0, applied.stderr
    proc = world.node_cmd("enact", "--node", "n1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "n1.br1-on-default-gw: Available" in proc.stdout
    assert kstate.link(node, "up0")["master"] == "br1"
    assert kstate.link(node, "br1")["address"] == mac
    assert kstate.addresses(node, "br1") == [f"{world.net}.0.2/24"]
    assert kstate.addresses(node, "up0") == []
    default = [r for r in kstate.routes(node) if r["dst"] == "default"]
    assert [(r["dev"], r["gateway"]) for r in default] == [("br1", world.host)]
    assert world.pings_host()
    status = _nnce(world, "n1.br1-on-default-gw")["status"]
    captured = status["capturedStates"]
    assert set(captured) == set(BRIDGE_ON_DEFAULT_GW_CAPTURE)
    assert [i["name"] for i in captured["base-iface"]["state"]["interfaces"]] == ["up0"]
    assert captured["default-gw"]["state"]["routes"]["running"][0]["next-hop-interface"] == "up0"
    resolved = status["desiredState"]
    assert resolved["interfaces"][0]["bridge"]["port"] == [{"name": "up0"}]
    assert resolved["interfaces"][1]["name"] == "up0"
    assert resolved["interfaces"][0]["mac-address"] == mac.upper()
    assert resolved["routes"]["config"][0]["next-hop-interface"] == "br1"
    # enacted again (same generation), the captures are not re-run against the changed
    # node (where br1 now has the default route): nothing changes
    again = world.node_cmd("enact", "--node", "n1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert kstate.link(node, "up0")["master"] == "br1"
    assert _nnce(world, "n1.br1-on-default-gw")["status"]["capturedStates"]["base-iface"]["state"][
        "interfaces"][0]["name"] == "up0"


def test_a_capture_that_matches_nothing_fails_the_enactment_and_changes_nothing(
        world: NodeWorld) -> None:
    before = kstate.snapshot(world.node.name)
    manifest = with_capture(nncp("no-gw", bridge_on_default_gw(world.host)), {
        **BRIDGE_ON_DEFAULT_GW_CAPTURE,
        "default-gw": 'routes.running.destination=="192.0.2.0/24"'})
    assert world.mh("apply", "-f", world.write("nncp.yml", manifest)).returncode == 0
    proc = world.node_cmd("enact", "--node", "n1")
    assert proc.returncode == 1
    status = _nnce(world, "n1.no-gw")["status"]
    failing = [c for c in status["conditions"] if c["status"] == "True"]
    assert [(c["type"], c["reason"]) for c in failing] == [("Failing", "FailedToConfigure")]
    assert failing[0]["message"].startswith(
        "failure generating desiredState and capturedStates: capture 'base-iface': "
        "capture.default-gw.routes.running.0.next-hop-interface: capture 'default-gw' is empty")
    assert "Degraded" in world.mh("get", "nncp", "no-gw").stdout
    assert kstate.snapshot(world.node.name) == before


def test_a_generated_state_the_schema_refuses_fails_on_the_node(world: NodeWorld) -> None:
    before = kstate.snapshot(world.node.name)
    state = {"interfaces": [{"name": "br1", "type": "linux-bridge",
                             "mtu": "{{ capture.base-iface.interfaces.0.name }}"}]}
    manifest = with_capture(nncp("bad-mtu", state), BRIDGE_ON_DEFAULT_GW_CAPTURE)
    assert world.mh("apply", "-f", world.write("nncp.yml", manifest)).returncode == 0
    proc = world.node_cmd("enact", "--node", "n1")
    assert proc.returncode == 1
    assert "interfaces[0].mtu: expected a integer, got string 'up0'" in proc.stdout
    assert kstate.snapshot(world.node.name) == before


@pytest.mark.parametrize(("captures", "state", "message"), [
    ({"gw": "routes.running.destination=="}, {},
     "spec.capture: capture 'gw': expected string or number or identity"),
    ({"gw": 'routes.running.destination=="0.0.0.0/0"'},
     {"interfaces": [{"name": "{{ capture.other.interfaces.0.name }}"}]},
     "spec.capture: '{{ capture.other.interfaces.0.name }}': capture 'other' is not defined"),
    ({"1gw": 'routes.running.destination=="0.0.0.0/0"'}, {},
     "spec.capture: '1gw' is not a capture name"),
    # the parts of a desired state around its references are checked before it is stored
    (BRIDGE_ON_DEFAULT_GW_CAPTURE,
     {"interfaces": [{"name": "br1", "type": "linux-bridge",
                      "mtu": "{{ capture.default-gw.routes.running.0.metric }}",
                      "bridge": {"port": [{"name": "{{ capture.base-iface.interfaces.0.name }}",
                                           "vlan": {"mdoe": "trunk"}}]}}]},
     "spec.desiredState.interfaces[0].bridge.port[0].vlan.mdoe: unknown key"),
    (BRIDGE_ON_DEFAULT_GW_CAPTURE,
     {"interfaces": [{"name": "{{ capture.base-iface.interfaces.0.name }}",
                      "ipv4": {"address": [{"ip": "{{ capture.x.y }}", "prefix-length": 24}]}}]},
     "spec.capture: '{{ capture.x.y }}': capture 'x' is not defined"),
    (BRIDGE_ON_DEFAULT_GW_CAPTURE,
     {"interfaces": [{"name": "{{ capture.base-iface.interfaces.0.name }}", "state": "upp"}]},
     "spec.desiredState.interfaces[0].state: 'upp' is not one of"),
])
def test_apply_refuses_bad_captures_in_one_line(world: NodeWorld, captures: dict[str, str],
                                                state: dict[str, Any], message: str) -> None:
    proc = world.mh("apply", "-f", world.write("nncp.yml", with_capture(nncp("bad", state),
                                                                         captures)))
    assert proc.returncode == 1
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "No resources found" in world.mh("get", "nncp").stderr


def test_node_apply_of_an_nncp_with_captures(world: NodeWorld) -> None:
    manifest = with_capture(nncp("br-gw", bridge_on_default_gw(world.host)),
                            BRIDGE_ON_DEFAULT_GW_CAPTURE)
    before = kstate.snapshot(world.node.name)
    proc = world.node_cmd("apply", "-f", world.write("nncp.yml", manifest), "--no-commit",
                          "--timeout", "60")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert kstate.link(world.node.name, "up0")["master"] == "br1"
    assert world.pings_host()
    rolled = world.node_cmd("rollback")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert kstate.snapshot(world.node.name) == before


def test_node_apply_of_an_nncp_whose_capture_fails_changes_nothing(world: NodeWorld) -> None:
    manifest = with_capture(nncp("br-gw", bridge_on_default_gw(world.host)), {
        **BRIDGE_ON_DEFAULT_GW_CAPTURE, "default-gw": 'routes.running.metric=="100"'})
    before = kstate.snapshot(world.node.name)
    proc = world.node_cmd("apply", "-f", world.write("nncp.yml", manifest))
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "Error: spec.capture: capture 'default-gw': type mismatch: metric is a number")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert kstate.snapshot(world.node.name) == before


def test_a_changed_policy_captures_again(world: NodeWorld) -> None:
    """Captures are kept for one generation of the policy only."""
    captures = {"up": 'interfaces.name=="up0"'}
    state: dict[str, Any] = {
        "interfaces": [{"name": "up0", "mtu": "{{ capture.up.interfaces.0.mtu }}"}],
        "probes": {"default-gateway": False}}
    path = world.write("nncp.yml", with_capture(nncp("mtu", state), captures))
    assert world.mh("apply", "-f", path).returncode == 0
    assert world.node_cmd("enact", "--node", "n1").returncode == 0
    first = _nnce(world, "n1.mtu")["status"]
    assert first["desiredState"]["interfaces"][0]["mtu"] == 1500
    world.node.run("ip", "link", "set", "up0", "mtu", "1400")
    # same generation: the kept capture (1500) is applied again
    assert world.node_cmd("enact", "--node", "n1").returncode == 0
    assert kstate.link(world.node.name, "up0")["mtu"] == 1500
    world.node.run("ip", "link", "set", "up0", "mtu", "1400")
    state["interfaces"][0]["state"] = "up"  # a new generation
    assert world.mh("apply", "-f", world.write("nncp.yml", with_capture(
        nncp("mtu", state), captures))).returncode == 0
    assert world.node_cmd("enact", "--node", "n1").returncode == 0
    again = _nnce(world, "n1.mtu")["status"]
    assert again["policyGeneration"] == first["policyGeneration"] + 1
    assert again["capturedStates"]["up"]["state"]["interfaces"][0]["mtu"] == 1400


def test_node_policy_prints_what_a_policy_would_capture_and_changes_nothing(
        world: NodeWorld) -> None:
    before = kstate.snapshot(world.node.name)
    proc = world.node_cmd("policy", "-f", str(EXAMPLE))
    assert proc.returncode == 0, proc.stderr
    out = yaml.safe_load(proc.stdout)
    assert out["capturedStates"]["base-iface"]["interfaces"][0]["name"] == "up0"
    assert out["desiredState"]["interfaces"][0]["bridge"]["port"] == [{"name": "up0"}]
    assert kstate.snapshot(world.node.name) == before
    bare = world.write("policy.yml", {"capture": {"up": 'interfaces.name=="up0"'},
                                      "desiredState": {"x": "{{ capture.up.interfaces.0.mtu }}"}})
    as_json = world.node_cmd("policy", "-f", bare, "-o", "json")
    assert json.loads(as_json.stdout)["desiredState"] == {"x": 1500}
    bad = world.node_cmd("policy", "-f", world.write("bad.yml", {"interfaces": []}))
    assert bad.returncode == 1
    assert "not an NNCP manifest nor a policy with capture and desiredState" in bad.stderr
