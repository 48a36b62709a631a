"""Hot-plug on the real cluster: `kubectl annotate --overwrite` of a Running pod's
`k8s.v1.cni.cncf.io/networks` adds and removes its interfaces through the node daemon
(it watches its node's pods; no extra controller, no container-runtime socket)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multihome.net import links, netns
from support.kube import Kube, namespace_manifest, pod_manifest, wait_until

NS = "mh-hotplug"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
BRIDGES = ("mh-hp-l2", "mh-hp-ip")


def nad(name: str, bridge: str, ipam: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"cniVersion": "0.3.1", "name": name, "type": "bridge",
                              "bridge": bridge}
    if ipam:
        config["ipam"] = ipam
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name}, "spec": {"config": json.dumps(config)}}


@pytest.fixture(scope="module")
def ns(cluster: Kube, lab_state: str) -> Iterator[str]:
    cluster.apply(namespace_manifest(NS))
    ipam = {"type": "host-local", "subnet": "10.73.0.0/24",
            "dataDir": str(Path(lab_state) / "hotplug-ipam")}
    cluster.apply(nad("hp-l2", BRIDGES[0]), nad("hp-ip", BRIDGES[1], ipam), namespace=NS)
    yield NS
    cluster.run("delete", "namespace", NS, "--wait=true", timeout=180)
    with netns.iproute_in(None) as ipr:  # the bridges the plugin made for the NADs
        for bridge in BRIDGES:
            links.delete_by_name(ipr, bridge)


def _interfaces(status: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(s["interface"], s["name"]) for s in status]


def test_kubectl_annotate_plugs_net2_into_a_running_pod_and_unplugs_it(
        cluster: Kube, ns: str) -> None:
    cluster.apply(pod_manifest("peer", "hp-ip"), pod_manifest("web", "hp-l2"), namespace=ns)
    cluster.wait_running(ns, "peer", "web")
    peer_ip = cluster.network_status(ns, "peer")[1]["ips"][0]
    assert _interfaces(cluster.network_status(ns, "web")) == [
        ("eth0", "mh-k8s"), ("net1", f"{ns}/hp-l2")]

    cluster.run("annotate", "pod", "web", "-n", ns, f"{NETWORKS}=hp-l2,hp-ip", "--overwrite")
    status = wait_until(lambda: (lambda s: s if len(s) == 3 else None)(
        cluster.network_status(ns, "web")), 60, "net2 in web's network-status")
    assert _interfaces(status) == [("eth0", "mh-k8s"), ("net1", f"{ns}/hp-l2"),
                                   ("net2", f"{ns}/hp-ip")]
    assert status[2]["ips"][0].startswith("10.73.0.")
    out = cluster.exec(ns, "web", "ip", "address").stdout
    assert re.search(r"^\d+: net2@if\d+:", out, re.M), out
    ping = cluster.exec(ns, "web", "ping", "-c", "2", "-W", "3", peer_ip, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    added = wait_until(lambda: next((e for e in cluster.events(ns, "web")
                                     if e["reason"] == "AddedInterface"
                                     and "added interface net2" in e["message"]), None),
                       30, "AddedInterface event for net2")
    assert added["message"] == f"pod [{ns}/web]: added interface net2 to network: hp-ip"

    cluster.run("annotate", "pod", "web", "-n", ns, f"{NETWORKS}=hp-l2", "--overwrite")
    wait_until(lambda: len(cluster.network_status(ns, "web")) == 2 or None, 60,
               "net2 gone from web's network-status")
    out = cluster.exec(ns, "web", "ip", "address").stdout
    assert "net2" not in out and "net1" in out
    removed = wait_until(lambda: next((e for e in cluster.events(ns, "web")
                                       if e["reason"] == "RemovedInterface"), None),
                         30, "RemovedInterface event")
    assert removed["message"] == f"pod [{ns}/web]: removed interface net2 from network: hp-ip"

    # a NAD that does not exist: the pod keeps what it has, its events say why
    cluster.run("annotate", "pod", "web", "-n", ns, f"{NETWORKS}=hp-l2,no-such-net",
                "--overwrite")
    failed = wait_until(lambda: next((e for e in cluster.events(ns, "web")
                                      if e["reason"] == "FailedAddingInterface"), None),
                        30, "FailedAddingInterface event")
    assert failed["type"] == "Warning"
    assert failed["message"].startswith(
        f"pod [{ns}/web]: failed adding interface net2 to network: no-such-net: ")
    assert any(e["reason"] == "NoNetworkFound" for e in cluster.events(ns, "web"))
    assert _interfaces(cluster.network_status(ns, "web")) == [
        ("eth0", "mh-k8s"), ("net1", f"{ns}/hp-l2")]
    assert "net2" not in cluster.exec(ns, "web", "ip", "address").stdout
    cluster.run("delete", "pod", "web", "peer", "-n", ns, timeout=120)
