"""bridge-marker behaviour: a real bridge in a test namespace shows up on the Node."""

from __future__ import annotations

from typing import Any

from multihome.k8s.bridge_marker import capacity_patch, sync_node
from multihome.k8s.client import ApiClient
from multihome.net import links, netns
from support.fake_apiserver import FakeApiServer

NODE = "/api/v1/nodes"


def test_capacity_patch_adds_and_removes_only_bridges() -> None:
    status = {"capacity": {"cpu": "2", "bridge.network.kubevirt.io/old": "1k"},
              "allocatable": {"cpu": "2", "bridge.network.kubevirt.io/old": "1k"}}
    patch = capacity_patch(status, {"bridge.network.kubevirt.io/br1": "1k"})
    want = {"bridge.network.kubevirt.io/old": None, "bridge.network.kubevirt.io/br1": "1k"}
    assert patch == {"status": {"capacity": want, "allocatable": want}}
    same = {"capacity": {"bridge.network.kubevirt.io/b": "1k"},
            "allocatable": {"bridge.network.kubevirt.io/b": "1k"}}
    assert capacity_patch(same, {"bridge.network.kubevirt.io/b": "1k"}) is None


def test_bridges_come_and_go_on_node_status(netns: Any, apiserver: FakeApiServer,
                                            api: ApiClient) -> None:
    apiserver.put_object(NODE, {"apiVersion": "v1", "kind": "Node",
                                "metadata": {"name": "node-a"},
                                "status": {"capacity": {"cpu": "2"},
                                           "allocatable": {"cpu": "2"}}})
    br = "mhbr0"  # inside the test's own namespace: no other test can collide
    key = f"bridge.network.kubevirt.io/{br}"
    with _ipr(netns.path) as ipr:
        links.ensure_bridge(ipr, br)
    assert sync_node(api, "node-a", netns.path)
    node = apiserver.objects[("api/v1/nodes", "", "node-a")]
    assert node["status"]["capacity"] == {"cpu": "2", key: "1k"}
    assert node["status"]["allocatable"][key] == "1k"
    assert not sync_node(api, "node-a", netns.path)  # nothing changed: no write
    with _ipr(netns.path) as ipr:
        ipr.link("del", ifname=br)
    assert sync_node(api, "node-a", netns.path)
    node = apiserver.objects[("api/v1/nodes", "", "node-a")]
    assert node["status"]["capacity"] == {"cpu": "2"}


def _ipr(path: str) -> Any:
    return netns.iproute_in(path)


def test_daemon_starts_the_marker_in_kubernetes_mode(tmp_path: Any, monkeypatch: Any,
                                                     apiserver: FakeApiServer) -> None:
    from multihome.k8s.bridge_marker import start_for_daemon
    from multihome.k8s.store import open_kube_store
    from support.k8s_objects import kubeconfig, wait_for

    assert start_for_daemon("/var/lib/multihome/store.db") is None  # SQLite mode: nothing
    apiserver.put_object(NODE, {"apiVersion": "v1", "kind": "Node",
                                "metadata": {"name": "node-d"}, "status": {}})
    monkeypatch.setenv("NODE_NAME", "node-d")
    spec = f"k8s:{kubeconfig(tmp_path, apiserver)}"
    marker = start_for_daemon(spec)
    assert marker is not None
    try:
        wait_for(lambda: ("GET", f"{NODE}/node-d") in apiserver.requests)
    finally:
        marker.stop()
        open_kube_store(spec[4:]).shutdown()
