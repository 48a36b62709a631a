"""NNCP objects in the store, enacted on a namespace playing the node; NNCE conditions."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from multihome.store.objects import NNCP
from multihome.stores import open_store
from support import kstate
from support.node_world import MULTIHOME, NodeWorld, make_world
from support.node_world import nncp as _nncp

pytestmark = pytest.mark.netns


@pytest.fixture
def world(netns_factory: Any, tmp_path: Path) -> Iterator[NodeWorld]:
    yield make_world(netns_factory, tmp_path, random.randint(200, 250))


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


# -- rollout: maxUnavailable, Pending, Aborted, retries ---------------------------------


@pytest.fixture
def second(netns_factory: Any, tmp_path: Path) -> Iterator[NodeWorld]:
    """A second node sharing the first one's store (tmp_path): a two-node cluster."""
    yield make_world(netns_factory, tmp_path, random.randint(150, 199))


def _conditions(w: NodeWorld, name: str) -> dict[str, Any]:
    proc = w.mh("get", "nnce", name, "-o", "yaml")
    assert proc.returncode == 0, proc.stderr
    status: dict[str, Any] = yaml.safe_load(proc.stdout)["status"]
    return status


def _active(status: dict[str, Any]) -> tuple[str, str, str]:
    cond = next(c for c in status["conditions"] if c["status"] == "True")
    return cond["type"], cond["reason"], cond["message"]


def test_failed_node_fills_max_unavailable_and_next_node_aborts(
        world: NodeWorld, second: NodeWorld) -> None:
    world.mh("apply", "-f", world.write("ok.yml", _nncp("ok", world.bridge_policy(
        "br0", ["up0"]))))
    assert world.node_cmd("enact", "--node", "n1", "ok").returncode == 0
    # the same policy for both nodes, maxUnavailable 1: it cuts n1 off its gateway
    cut = _nncp("cut", world.bridge_policy("br0", []))
    cut["spec"]["maxUnavailable"] = 1
    world.mh("apply", "-f", world.write("cut.yml", cut))
    assert world.node_cmd("enact", "--node", "n1", "cut").returncode == 1
    before = kstate.links(second.node.name)
    proc = second.node_cmd("enact", "--node", "n2", "cut")
    assert proc.returncode == 1
    assert "n2.cut: Aborted (ConfigurationAborted)" in proc.stdout
    active, reason, message = _active(_conditions(second, "n2.cut"))
    assert (active, reason) == ("Aborted", "ConfigurationAborted")
    assert "1 node(s) failed this policy, maxUnavailable is 1" in message
    assert kstate.links(second.node.name).keys() == before.keys()  # n2 was not touched
    assert kstate.link(second.node.name, "br0") is None
    assert "Degraded" in world.mh("get", "nncp", "cut").stdout


def test_max_unavailable_two_lets_the_next_node_apply(world: NodeWorld,
                                                       second: NodeWorld) -> None:
    # n1 has no up9: the policy fails there; with maxUnavailable 2 n2 still goes ahead
    policy = _nncp("two", second.bridge_policy("br0", ["up0"], probes=False))
    policy["spec"]["maxUnavailable"] = 2
    policy["spec"]["desiredState"]["interfaces"][0]["bridge"]["port"].append({"name": "up9"})
    second.node.run("ip", "link", "add", "up9", "type", "veth", "peer", "name", "up9p")
    world.mh("apply", "-f", world.write("two.yml", policy))
    assert world.node_cmd("enact", "--node", "n1", "two").returncode == 1
    assert _active(_conditions(world, "n1.two"))[0] == "Failing"
    proc = second.node_cmd("enact", "--node", "n2", "two")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert kstate.link(second.node.name, "up9")["master"] == "br0"


def test_no_free_slot_is_pending_until_one_is_released(world: NodeWorld) -> None:
    world.mh("apply", "-f", world.write("p.yml", _nncp("p", world.bridge_policy(
        "br0", ["up0"]))))
    store = open_store(str(world.tmp / "store.db"))
    try:
        def set_count(n: int) -> None:
            obj = store.get(NNCP, "", "p")
            obj.body.setdefault("status", {})["unavailableNodeCountMap"] = {
                str(obj.metadata["generation"]): n}
            store.update(obj)

        set_count(1)  # another node is in the middle of applying (default 50% of 1 = 1)
        proc = world.node_cmd("enact", "--node", "n1")
        assert proc.returncode == 1
        assert "n1.p: Pending (MaxUnavailableLimitReached)" in proc.stdout
        assert kstate.link(world.node.name, "br0") is None
        set_count(0)
        assert world.node_cmd("enact", "--node", "n1").returncode == 0
        assert _active(_conditions(world, "n1.p"))[0] == "Available"
        counts = store.get(NNCP, "", "p").status["unavailableNodeCountMap"]
        assert set(counts.values()) == {0}  # the slot was given back
    finally:
        store.close()


def test_retries_exhausted_then_failing_with_count(world: NodeWorld) -> None:
    policy = _nncp("r", world.bridge_policy("br0", ["up0", "up9"], probes=False))
    policy["metadata"]["annotations"] = {"multihome.io/max-retries": "2"}
    world.mh("apply", "-f", world.write("r.yml", policy))
    proc = world.node_cmd("enact", "--node", "n1")
    assert proc.returncode == 1
    assert proc.stdout.count("failed: applying the policy failed") == 3
    status = _conditions(world, "n1.r")
    active, reason, message = _active(status)
    assert (active, reason) == ("Failing", "FailedToConfigure")
    assert message.startswith("failed after 3 attempts:") and "up9 does not exist" in message
    assert list(status["retryCount"].values()) == [3]
    assert kstate.link(world.node.name, "br0") is None  # every attempt was rolled back


def test_retry_succeeds_once_the_port_appears(world: NodeWorld) -> None:
    policy = _nncp("r2", world.bridge_policy("br0", ["up0", "up9"], probes=False))
    policy["metadata"]["annotations"] = {"multihome.io/max-retries": "3"}
    world.mh("apply", "-f", world.write("r2.yml", policy))
    proc = subprocess.Popen([*MULTIHOME, "node", "--netns", world.node.name, "enact",
                             "--node", "n1"], env=world.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline:
            got = world.mh("get", "nnce", "n1.r2", "-o", "yaml")
            if got.returncode == 0:
                _, reason, seen = _active(yaml.safe_load(got.stdout)["status"])
                if reason == "Retrying":
                    break
            time.sleep(0.1)
        assert "Retrying 2/4" in seen
        world.node.run("ip", "link", "add", "up9", "type", "veth", "peer", "name", "up9p")
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    status = _conditions(world, "n1.r2")
    assert _active(status)[0] == "Available"
    assert list(status["retryCount"].values()) == [1]
    assert kstate.link(world.node.name, "up9")["master"] == "br0"


def test_policy_no_longer_selecting_the_node_drops_its_enactment(world: NodeWorld) -> None:
    path = world.write("s.yml", _nncp("sel", world.bridge_policy("br0", ["up0"]),
                                      {"role": "edge"}))
    world.mh("apply", "-f", path)
    assert world.node_cmd("enact", "--node", "n1").stdout.count("does not match") == 1
    world.mh("apply", "-f", world.write("s2.yml", _nncp(
        "sel", world.bridge_policy("br0", ["up0"]), {"kubernetes.io/hostname": "n1"})))
    assert world.node_cmd("enact", "--node", "n1").returncode == 0
    assert "n1.sel" in world.mh("get", "nnce").stdout
    world.mh("apply", "-f", path)
    proc = world.node_cmd("enact", "--node", "n1")
    assert "enactment n1.sel removed" in proc.stdout
    assert "No resources found" in world.mh("get", "nnce").stderr
    assert kstate.link(world.node.name, "up0")["master"] == "br0"  # not reverted


def test_bad_max_unavailable_and_retries_refused(world: NodeWorld) -> None:
    bad = _nncp("b", world.bridge_policy("br0", ["up0"]))
    bad["spec"]["maxUnavailable"] = "half"
    proc = world.mh("apply", "-f", world.write("b.yml", bad))
    assert proc.returncode == 1 and "spec.maxUnavailable 'half'" in proc.stderr
    bad = _nncp("b", world.bridge_policy("br0", ["up0"]))
    bad["metadata"]["annotations"] = {"multihome.io/max-retries": "many"}
    proc = world.mh("apply", "-f", world.write("b2.yml", bad))
    assert proc.returncode == 1 and "multihome.io/max-retries" in proc.stderr


def _policy_conditions(world: NodeWorld, name: str) -> dict[str, tuple[str, str, str]]:
    body = yaml.safe_load(world.mh("get", "nncp", name, "-o", "yaml").stdout)
    return {c["type"]: (c["status"], c["reason"], c["message"])
            for c in body["status"]["conditions"]}


def test_policy_matching_no_node_is_ignored_until_a_node_matches(world: NodeWorld) -> None:
    world.mh("apply", "-f", world.write("p.yml", _nncp(
        "p", world.bridge_policy("br0", ["up0"]), {"kubernetes.io/hostname": "lab-node"})))
    assert world.node_cmd("enact", "--node", "elsewhere").returncode == 0
    ignored = _policy_conditions(world, "p")
    assert ignored["Ignored"][:2] == ("True", "NoMatchingNode")
    assert "no node matches its nodeSelector" in ignored["Ignored"][2]
    assert {t: s for t, (s, _, _) in ignored.items()} == {
        "Available": "False", "Degraded": "False", "Progressing": "False", "Ignored": "True"}
    assert "NoMatchingNode" in world.mh("get", "nncp").stdout
    assert kstate.link(world.node.name, "br0") is None
    proc = world.node_cmd("enact", "--node", "lab-node")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    matched = _policy_conditions(world, "p")
    assert matched["Available"][:2] == ("True", "SuccessfullyConfigured")
    assert matched["Ignored"][0] == "False"
