"""A NodeNetworkConfigurationPolicy rolled out over two nodes through the real API:
maxUnavailable is counted in the policy's status under the API server's optimistic
concurrency, so a failing policy never takes down more nodes than it allows.

The second node is a Node object without a kubelet; its node controller is a second
process, `multihome node enact --node mh-lab-node-2`, with the node daemon's own
ServiceAccount token (the RBAC of deploy/ is what is exercised)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.kube import Kube, wait_until

NODE2 = "mh-lab-node-2"
LABEL = "mh-lab/rollout"
POLICY = "failing-rollout"


@pytest.fixture
def two_nodes(cluster: Kube) -> Iterator[list[str]]:
    cluster.apply({"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": NODE2, "labels": {LABEL: "true"}}})
    cluster.run("label", "node", "mh-lab-node", f"{LABEL}=true", "--overwrite")
    yield ["mh-lab-node", NODE2]
    cluster.run("delete", "nncp", POLICY, "--ignore-not-found", timeout=60)
    for nnce in (f"mh-lab-node.{POLICY}", f"{NODE2}.{POLICY}"):
        cluster.run("delete", "nnce", nnce, "--ignore-not-found", timeout=60)
    cluster.run("label", "node", "mh-lab-node", f"{LABEL}-")
    cluster.run("delete", "node", NODE2, "--ignore-not-found", timeout=60)


def _states(cluster: Kube, nodes: list[str]) -> dict[str, tuple[str, str]]:
    out = {}
    for node in nodes:
        nnce = cluster.get("nnce", f"{node}.{POLICY}") or {}
        for c in (nnce.get("status") or {}).get("conditions") or []:
            if c.get("status") == "True":
                out[node] = (str(c["type"]), str(c.get("reason", "")))
    return out


def test_max_unavailable_holds_across_nodes(cluster: Kube, two_nodes: list[str],
                                            lab_state: str) -> None:
    policy = {
        "apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "nodeSelector": {LABEL: "true"},
            "maxUnavailable": 1,
            "desiredState": {
                "interfaces": [{"name": "mh-rollout-br", "type": "linux-bridge",
                                "state": "up",
                                "bridge": {"port": [{"name": "mh-no-such-port"}]}}],
                "probes": {"default-gateway": False},
            },
        },
    }
    cluster.apply(policy)
    kubeconfig = Path(lab_state, "cluster", "kubeconfig", "multihome-node.kubeconfig")
    cli = str(Path(sys.executable).parent / "multihome")
    second = subprocess.run(
        [cli, "--store", f"k8s:{kubeconfig}", "node", "enact", POLICY, "--node", NODE2],
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, NODE_NAME=NODE2))
    assert second.returncode != 0, second.stdout  # its enactment did not become Available
    def settled() -> dict[str, tuple[str, str]] | None:
        s = _states(cluster, two_nodes)
        done = len(s) == 2 and all(t in ("Failing", "Aborted", "Pending")
                                   for t, _ in s.values())
        return s if done else None

    states = wait_until(settled, 90, "both enactments settled",
                        describe=lambda: json.dumps(_states(cluster, two_nodes)))
    kinds = sorted(t for t, _ in states.values())
    assert kinds.count("Failing") == 1, states  # maxUnavailable 1: one node failed
    other = next(v for v in states.values() if v[0] != "Failing")
    assert other in (("Aborted", "ConfigurationAborted"),
                     ("Pending", "MaxUnavailableLimitReached")), states
    assert not Path("/sys/class/net/mh-rollout-br").exists()  # the failure rolled back
    nncp = cluster.get("nncp", POLICY) or {}
    conditions = {c["type"]: c["status"] for c in nncp["status"]["conditions"]}
    assert conditions.get("Degraded") == "True", conditions
