"""NNCPs with nmpolicy captures through the real API server: the CRD keeps `spec.capture`
and the references, the webhook refuses a bad expression, the node daemon resolves the
captures against the node's state and shows them in the enactment.

The captures read a veth pair the test makes on the node (with an MTU no other link
has) and make a new, port-less bridge from it: nothing touches the machine's own
interfaces, and every name is unique to the run."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from support import kstate
from support.kube import Kube, wait_until
from support.netns import unique

NODE = "mh-lab-node"
POLICY = "mh-capture"
EMPTY_POLICY = "mh-capture-empty"
SOURCE_MTU = 1432


def _captures(source: str, bridge: str) -> dict[str, str]:
    return {"devbr": f'interfaces.name=="{source}"',
            "renamed": f'capture.devbr | interfaces.name:="{bridge}"'}


def _policy(name: str, captures: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": NODE},
            "capture": captures,
            "desiredState": {
                "interfaces": [{
                    "name": "{{ capture.renamed.interfaces.0.name }}",
                    "type": "linux-bridge", "state": "up",
                    "mac-address": "{{ capture.devbr.interfaces.0.mac-address }}",
                    "mtu": "{{ capture.devbr.interfaces.0.mtu }}",
                    "bridge": {"options": {"stp": {"enabled": False}}, "port": []}}],
                # the machine's own gateway is never pinged from the tests
                "probes": {"default-gateway": False},
            },
        },
    }


@pytest.fixture
def names(cluster: Kube) -> Iterator[tuple[str, str]]:
    """(a veth made on the node for the captures to read, the bridge the policy makes)."""
    source, bridge = unique("mhcs"), unique("mhcb")
    subprocess.run(["ip", "link", "add", source, "mtu", str(SOURCE_MTU), "type", "veth",
                    "peer", "name", f"{source}p"], check=True)
    try:
        yield source, bridge
    finally:
        for name in (POLICY, EMPTY_POLICY):
            cluster.run("delete", "nncp", name, "--ignore-not-found", timeout=60)
            cluster.run("delete", "nnce", f"{NODE}.{name}", "--ignore-not-found", timeout=60)
        # a deleted policy leaves the node as it is (kubernetes-nmstate): remove the links
        for link in (bridge, source):
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)


def _settled(cluster: Kube, name: str) -> dict[str, Any] | None:
    nnce = cluster.get("nnce", f"{NODE}.{name}") or {}
    for cond in (nnce.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond["type"] in ("Available", "Failing",
                                                              "Aborted"):
            return nnce
    return None


def test_a_policy_with_captures_is_enacted_and_shows_what_it_captured(
        cluster: Kube, names: tuple[str, str]) -> None:
    source, bridge = names
    link = kstate.link(None, source)
    captures = _captures(source, bridge)
    cluster.apply(_policy(POLICY, captures))
    stored = cluster.get("nncp", POLICY) or {}
    assert stored["spec"]["capture"] == captures  # kept by the CRD, not pruned
    nnce = wait_until(lambda: _settled(cluster, POLICY), 120, "the enactment settled",
                      describe=lambda: json.dumps(cluster.get("nnce", f"{NODE}.{POLICY}")))
    status = nnce["status"]
    active = [c for c in status["conditions"] if c["status"] == "True"]
    assert active[0]["type"] == "Available", active
    made = kstate.link(None, bridge)
    assert made is not None and made["address"] == link["address"]
    assert made["mtu"] == SOURCE_MTU
    captured = status["capturedStates"]
    assert [i["name"] for i in captured["devbr"]["state"]["interfaces"]] == [source]
    assert [i["name"] for i in captured["renamed"]["state"]["interfaces"]] == [bridge]
    assert status["desiredState"]["interfaces"][0]["name"] == bridge
    assert status["desiredState"]["interfaces"][0]["mtu"] == SOURCE_MTU
    conditions = wait_until(lambda: {c["type"]: c["status"] for c in (
        (cluster.get("nncp", POLICY) or {}).get("status") or {}).get("conditions") or []},
        60, "the policy's conditions")
    assert conditions["Available"] == "True", conditions


def test_a_capture_that_matches_nothing_fails_the_enactment(
        cluster: Kube, names: tuple[str, str]) -> None:
    _, bridge = names
    cluster.apply(_policy(EMPTY_POLICY, _captures(unique("mhnone"), bridge)))
    nnce = wait_until(lambda: _settled(cluster, EMPTY_POLICY), 120, "the enactment settled")
    active = [c for c in nnce["status"]["conditions"] if c["status"] == "True"]
    assert [(c["type"], c["reason"]) for c in active] == [("Failing", "FailedToConfigure")]
    assert active[0]["message"].startswith(
        "failure generating desiredState and capturedStates: capture 'renamed'")
    assert "capture 'devbr' is empty" in active[0]["message"]
    assert kstate.link(None, bridge) is None
    degraded = wait_until(lambda: any(
        c["type"] == "Degraded" and c["status"] == "True"
        for c in ((cluster.get("nncp", EMPTY_POLICY) or {}).get("status") or {}).get(
            "conditions") or []), 60, "the policy Degraded")
    assert degraded


def test_the_webhook_refuses_a_bad_capture_expression(cluster: Kube) -> None:
    body = _policy("mh-capture-bad", {"devbr": 'interfaces.name=="x'})
    out = cluster.run("apply", "--dry-run=server", "-f", "-", input_text=json.dumps(body),
                      check=False)
    assert out.returncode != 0, out.stdout
    assert "spec.capture: capture 'devbr': unterminated string" in out.stderr
