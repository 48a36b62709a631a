"""Admission and scheduling for real: the API server calls multihome's webhooks over TLS
in its admission chain, and the real scheduler reads the bridge resources."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from support.kube import Kube, namespace_manifest, pod_manifest, wait_until

NS = "mh-admission"
OTHER_NODE = "mh-lab-node-2"


def nad(name: str, config: dict[str, Any], resource: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if resource:
        meta["annotations"] = {"k8s.v1.cni.cncf.io/resourceName": resource}
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": meta, "spec": {"config": json.dumps(config)}}


def bridge_config(name: str, bridge: str, **extra: Any) -> dict[str, Any]:
    return {"cniVersion": "0.3.1", "name": name, "type": "cnv-bridge", "bridge": bridge,
            **extra}


@pytest.fixture(scope="module")
def ns(cluster: Kube) -> Iterator[str]:
    cluster.apply(namespace_manifest(NS))
    yield NS
    cluster.run("delete", "pods", "--all", "-n", NS, "--force", "--grace-period=0",
                check=False, timeout=60)
    cluster.run("delete", "namespace", NS, "--wait=true", timeout=180)


def test_a_nad_with_vlan_5000_is_refused_with_the_webhooks_message(cluster: Kube,
                                                                   ns: str) -> None:
    bad = nad("vlan-5000", bridge_config("vlan-5000", "dev-bridge", vlan=5000))
    out = cluster.run("apply", "-n", ns, "-f", "-", input_text=json.dumps(bad), check=False)
    assert out.returncode != 0
    assert 'admission webhook "nad.multihome.io" denied the request' in out.stderr
    assert "vlan" in out.stderr and "5000" in out.stderr
    assert cluster.get("net-attach-def", "vlan-5000", ns) is None


def test_a_pod_gets_the_resource_its_nad_names(cluster: Kube, ns: str) -> None:
    resource = "bridge.network.kubevirt.io/mh-sched-br"
    cluster.apply(nad("sched-net", bridge_config("sched-net", "mh-sched-br"), resource),
                  namespace=ns)
    cluster.apply(pod_manifest("wants-bridge", "sched-net"), namespace=ns)
    pod = cluster.get("pod", "wants-bridge", ns) or {}
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["requests"][resource] == "1"
    assert resources["limits"][resource] == "1"


@pytest.fixture
def other_node(cluster: Kube) -> Iterator[str]:
    """A second Node object, without a kubelet, that has the bridge this node lacks."""
    cluster.apply({"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": OTHER_NODE, "labels": {"mh-lab/fake": "true"}}})
    capacity = {"cpu": "2", "memory": "4Gi", "pods": "10",
                "bridge.network.kubevirt.io/mh-sched-br": "1k"}
    cluster.run("patch", "node", OTHER_NODE, "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"capacity": capacity, "allocatable": capacity}}))
    yield OTHER_NODE
    cluster.run("delete", "node", OTHER_NODE, "--ignore-not-found", timeout=60)


def test_the_scheduler_places_the_pod_on_the_node_with_the_bridge(
        cluster: Kube, ns: str, other_node: str) -> None:
    pod = pod_manifest("placed", "sched-net", tolerate_all=True)
    cluster.apply(pod, namespace=ns)
    node = wait_until(lambda: (cluster.get("pod", "placed", ns) or {}).get("spec", {})
                      .get("nodeName"), 60, "pod placed on a node",
                      describe=lambda: cluster.describe_pod(ns, "placed"))
    assert node == other_node
    stuck = cluster.get("pod", "wants-bridge", ns) or {}
    assert stuck.get("spec", {}).get("nodeName") in (None, other_node)
    cluster.run("delete", "pod", "placed", "wants-bridge", "-n", ns, "--force",
                "--grace-period=0", "--ignore-not-found", check=False, timeout=60)


@pytest.mark.parametrize("spec", [
    {"maxUnavailable": "abc%"}, {"maxUnavailable": -1}, {"maxUnavailable": "101%"},
    {"nodeSelector": {"a": 5}}, {"desiredState": {"interfaces": [{"name": 5}]}},
    {"desiredState": {"interfaces": [{"name": "br9", "type": "no-such-type"}]}},
])
def test_the_api_server_refuses_malformed_node_policies(cluster: Kube,
                                                        spec: dict[str, Any]) -> None:
    body = {"apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
            "metadata": {"name": "malformed"}, "spec": {"desiredState": {}, **spec}}
    out = cluster.run("apply", "--dry-run=server", "-f", "-", input_text=json.dumps(body),
                      check=False)
    assert out.returncode != 0, out.stdout
    assert "invalid" in out.stderr.lower() or "denied the request" in out.stderr
