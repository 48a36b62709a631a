"""NNCPs with nmpolicy captures through the real API server: the CRD keeps `spec.capture`
and the references, the webhook refuses a bad expression, the node daemon resolves the
captures against the node's state and shows them in the enactment.

The captures read the lab's uplink (the veth `lab up` made towards its external
namespace) and make a new, port-less bridge from it: nothing touches the machine's own
interfaces."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from support import kstate
from support.kube import Kube, wait_until

NODE = "mh-lab-node"
POLICY = "mh-capture"
EMPTY_POLICY = "mh-capture-empty"
BRIDGE = "mh-cap-br"
UPLINK = "dev-bridge-up"  # LabSettings.uplink of the default settings
CAPTURE = {
    "devbr": f'interfaces.name=="{UPLINK}"',
    "renamed": f'capture.devbr | interfaces.name:="{BRIDGE}"',
}


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
def policies(cluster: Kube) -> Iterator[None]:
    yield
    for name in (POLICY, EMPTY_POLICY):
        cluster.run("delete", "nncp", name, "--ignore-not-found", timeout=60)
        cluster.run("delete", "nnce", f"{NODE}.{name}", "--ignore-not-found", timeout=60)
    # a deleted policy leaves the node as it is (kubernetes-nmstate): remove the bridge
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)


def _settled(cluster: Kube, name: str) -> dict[str, Any] | None:
    nnce = cluster.get("nnce", f"{NODE}.{name}") or {}
    for cond in (nnce.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond["type"] in ("Available", "Failing",
                                                              "Aborted"):
            return nnce
    return None


def test_a_policy_with_captures_is_enacted_and_shows_what_it_captured(
        cluster: Kube, policies: None) -> None:
    devbr = kstate.link(None, UPLINK)
    assert devbr is not None, f"the lab has no {UPLINK}"
    cluster.apply(_policy(POLICY, CAPTURE))
    stored = cluster.get("nncp", POLICY) or {}
    assert stored["spec"]["capture"] == CAPTURE  # kept by the CRD, not pruned
    nnce = wait_until(lambda: _settled(cluster, POLICY), 120, "the enactment settled",
                      describe=lambda: json.dumps(cluster.get("nnce", f"{NODE}.{POLICY}")))
    status = nnce["status"]
    active = [c for c in status["conditions"] if c["status"] == "True"]
    assert active[0]["type"] == "Available", active
    made = kstate.link(None, BRIDGE)
    assert made is not None and made["address"] == devbr["address"]
    assert made["mtu"] == devbr["mtu"]
    captured = status["capturedStates"]
    assert [i["name"] for i in captured["devbr"]["state"]["interfaces"]] == [UPLINK]
    assert [i["name"] for i in captured["renamed"]["state"]["interfaces"]] == [BRIDGE]
    assert status["desiredState"]["interfaces"][0]["name"] == BRIDGE
    assert status["desiredState"]["interfaces"][0]["mtu"] == devbr["mtu"]
    conditions = {c["type"]: c["status"] for c in (cluster.get("nncp", POLICY) or {})[
        "status"]["conditions"]}
    assert conditions["Available"] == "True", conditions


def test_a_capture_that_matches_nothing_fails_the_enactment(cluster: Kube,
                                                             policies: None) -> None:
    cluster.apply(_policy(EMPTY_POLICY, {**CAPTURE, "devbr": 'interfaces.name=="mh-none"'}))
    nnce = wait_until(lambda: _settled(cluster, EMPTY_POLICY), 120, "the enactment settled")
    active = [c for c in nnce["status"]["conditions"] if c["status"] == "True"]
    assert [(c["type"], c["reason"]) for c in active] == [("Failing", "FailedToConfigure")]
    assert active[0]["message"].startswith(
        "failure generating desiredState and capturedStates: capture 'renamed'")
    assert "capture 'devbr' is empty" in active[0]["message"]
    assert kstate.link(None, BRIDGE) is None
    degraded = wait_until(lambda: any(
        c["type"] == "Degraded" and c["status"] == "True"
        for c in ((cluster.get("nncp", EMPTY_POLICY) or {}).get("status") or {}).get(
            "conditions") or []), 60, "the policy Degraded")
    assert degraded


def test_the_webhook_refuses_a_bad_capture_expression(cluster: Kube) -> None:
    body = _policy("mh-capture-bad", {"devbr": 'interfaces.name=="dev-bridge-up'})
    out = cluster.run("apply", "--dry-run=server", "-f", "-", input_text=json.dumps(body),
                      check=False)
    assert out.returncode != 0, out.stdout
    assert "spec.capture: capture 'devbr': unterminated string" in out.stderr
