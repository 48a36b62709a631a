"""NNCP objects in the store, enacted on a namespace playing the node; NNCE conditions."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import kstate
from integration.node_world import NodeWorld, make_world

pytestmark = pytest.mark.netns


@pytest.fixture
def world(netns_factory: Any, tmp_path: Path) -> Iterator[NodeWorld]:
    yield make_world(netns_factory, tmp_path, random.randint(200, 250))


def _nncp(name: str, state: dict[str, Any], selector: dict[str, str] | None = None
          ) -> dict[str, Any]:
    spec: dict[str, Any] = {"desiredState": state}
    if selector is not None:
        spec["nodeSelector"] = selector
    return {"apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
            "metadata": {"name": name}, "spec": spec}


def test_enact_policy_records_available_enactment(world: NodeWorld) -> None:
    path = world.write("nncp.yml", _nncp("br-pol", world.bridge_policy("br0", ["up0"]),
                                         {"kubernetes.io/hostname": "lab-node"}))
    applied = world.mh("apply", "-f", path)
    assert applied.returncode == 0, applied.stderr
    assert "nodenetworkconfigurationpolicy.nmstate.io/br-pol created" in applied.stdout
    other = world.node_cmd("enact", "--node", "elsewhere")
    assert other.returncode == 0 and "does not match" in other.stdout
    assert kstate.link(world.node.name, "br0") is None
    proc = world.node_cmd("enact", "--node", "lab-node")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lab-node.br-pol: Available" in proc.stdout
    assert kstate.link(world.node.name, "up0")["master"] == "br0"
    table = world.mh("get", "nnce").stdout
    assert "lab-node.br-pol" in table and "Available" in table
    nnce = yaml.safe_load(world.mh("get", "nnce", "lab-node.br-pol", "-o", "yaml").stdout)
    types = {c["type"]: c["status"] for c in nnce["status"]["conditions"]}
    assert types == {"Available": "True", "Failing": "False", "Progressing": "False",
                     "Pending": "False", "Aborted": "False"}
    assert "SuccessfullyConfigured" in world.mh("get", "nncp").stdout
    nns = yaml.safe_load(world.mh("get", "nns", "lab-node", "-o", "yaml").stdout)
    names = {i["name"] for i in nns["status"]["currentState"]["interfaces"]}
    assert {"br0", "up0"} <= names


def test_failing_policy_is_rolled_back_and_reported(world: NodeWorld) -> None:
    world.mh("apply", "-f", world.write("ok.yml", _nncp("ok", world.bridge_policy(
        "br0", ["up0"]))))
    assert world.node_cmd("enact", "--node", "n1", "ok").returncode == 0
    bad = world.bridge_policy("br0", [])
    world.mh("apply", "-f", world.write("bad.yml", _nncp("cut", bad)))
    proc = world.node_cmd("enact", "--node", "n1", "cut")
    assert proc.returncode == 1
    assert "n1.cut: Failing (FailedToConfigure)" in proc.stdout
    assert world.host in proc.stdout
    assert kstate.link(world.node.name, "up0")["master"] == "br0"
    assert "Degraded" in world.mh("get", "nncp", "cut").stdout


def test_invalid_policy_refused_by_apply(world: NodeWorld) -> None:
    state = world.bridge_policy("br0", ["up0"])
    state["interfaces"][0]["mtu"] = "big"
    proc = world.mh("apply", "-f", world.write("bad.yml", _nncp("bad", state)))
    assert proc.returncode == 1
    assert "spec.desiredState.interfaces[0].mtu: expected a integer" in proc.stderr
    assert "No resources found" in world.mh("get", "nncp").stderr


def test_describe_lists_bridge_resources(world: NodeWorld) -> None:
    world.mh("apply", "-f", world.write("ok.yml", _nncp("ok", world.bridge_policy(
        "br0", ["up0"]))))
    world.node_cmd("enact", "--node", "n2")
    out = world.node_cmd("describe", "--node", "n2").stdout
    assert "bridge.network.kubevirt.io/br0: 1k" in out
