"""The cluster-wide IPAM on the real cluster: a NAD written for whereabouts, unchanged,
gives two pods distinct addresses through the kubelet, containerd and the daemon; the
IPPool is the object whereabouts writes; deleting the pods releases the addresses. Then
four "nodes" (processes with their own API connections) race for one pool on the real
API server: no duplicate, every address accounted for."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from multihome.net import links, netns
from support.kube import Kube, namespace_manifest, pod_manifest, wait_until
from support.wb import addresses, allocated, conf, open_pools, run_nodes

NS = "wb-test"
BRIDGE = "mh-wb-br0"
POOL_NS = "kube-system"
NAD_CONFIG = {  # as whereabouts' README writes one: nothing multihome-specific
    "cniVersion": "0.3.1", "name": "wb-net", "type": "bridge", "bridge": BRIDGE,
    "ipam": {"type": "whereabouts", "range": "192.168.77.0/24",
             "exclude": ["192.168.77.0/30"]},
}
POOL = "192.168.77.0-24"


def _delete_pool_objects(cluster: Kube, pool_name: str, reservation_prefix: str) -> None:
    """The pool and the reservations (names starting with the prefix) a test made."""
    cluster.run("delete", "ippools.whereabouts.cni.cncf.io", pool_name, "-n", POOL_NS,
                "--ignore-not-found", check=False)
    for res in cluster.items("overlappingrangeipreservations.whereabouts.cni.cncf.io",
                             POOL_NS):
        if not res["metadata"]["name"].startswith(reservation_prefix):
            continue
        cluster.run("delete", "overlappingrangeipreservations.whereabouts.cni.cncf.io",
                    res["metadata"]["name"], "-n", POOL_NS, "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def wb_ns(cluster: Kube) -> Iterator[str]:
    cluster.apply(namespace_manifest(NS))
    cluster.apply({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                   "metadata": {"name": "wb-net"},
                   "spec": {"config": json.dumps(NAD_CONFIG)}}, namespace=NS)
    yield NS
    cluster.run("delete", "namespace", NS, "--wait=true", timeout=180, check=False)
    _delete_pool_objects(cluster, POOL, "192.168.77.")
    with netns.iproute_in(None) as ipr:
        links.delete_by_name(ipr, BRIDGE)


def _allocations(cluster: Kube) -> dict[str, dict[str, str]]:
    pool = cluster.get("ippools.whereabouts.cni.cncf.io", POOL, POOL_NS) or {}
    allocs: dict[str, dict[str, str]] = pool.get("spec", {}).get("allocations", {})
    return allocs


def test_whereabouts_nad_unchanged_gives_distinct_addresses(cluster: Kube, wb_ns: str) -> None:
    names = ["wb-a", "wb-b"]
    cluster.apply(*(pod_manifest(n, "wb-net") for n in names), namespace=wb_ns)
    try:
        cluster.wait_running(wb_ns, *names)
        ips = {n: cluster.network_status(wb_ns, n)[1]["ips"] for n in names}
        assert sorted(ip for v in ips.values() for ip in v) == ["192.168.77.4", "192.168.77.5"]
        pool = cluster.get("ippools.whereabouts.cni.cncf.io", POOL, POOL_NS)
        assert pool is not None
        assert pool["apiVersion"] == "whereabouts.cni.cncf.io/v1alpha1"
        assert pool["spec"]["range"] == "192.168.77.0/24"
        allocs = pool["spec"]["allocations"]
        assert sorted(allocs) == ["4", "5"]
        assert {a["podref"] for a in allocs.values()} == {f"{wb_ns}/wb-a", f"{wb_ns}/wb-b"}
        assert {a["ifname"] for a in allocs.values()} == {"net1"}
        assert all(len(a["id"]) == 64 for a in allocs.values())  # containerd's sandbox ID
        reservations = {r["metadata"]["name"] for r in cluster.items(
            "overlappingrangeipreservations.whereabouts.cni.cncf.io", POOL_NS)}
        assert {"192.168.77.4", "192.168.77.5"} <= reservations
    finally:
        cluster.run("delete", "pod", *names, "-n", wb_ns, "--ignore-not-found", timeout=120)
    wait_until(lambda: _allocations(cluster) == {}, 60, "the pods' addresses released")


def test_an_ipamclaim_keeps_the_address_for_the_next_pod(cluster: Kube, wb_ns: str) -> None:
    cluster.apply({"apiVersion": "k8s.cni.cncf.io/v1alpha1", "kind": "IPAMClaim",
                   "metadata": {"name": "vm1.wb-net"},
                   "spec": {"network": "wb-net", "interface": "net1"}}, namespace=wb_ns)
    selection = json.dumps([{"name": "wb-net", "ipam-claim-reference": "vm1.wb-net"}])
    try:
        for launcher in ("launcher-a", "launcher-b"):
            # another pod first: the lowest free address is never the claim's by luck
            cluster.apply(pod_manifest("filler-" + launcher, "wb-net"), namespace=wb_ns)
            cluster.wait_running(wb_ns, "filler-" + launcher)
            cluster.apply(pod_manifest(launcher, selection), namespace=wb_ns)
            cluster.wait_running(wb_ns, launcher)
            assert cluster.network_status(wb_ns, launcher)[1]["ips"] == ["192.168.77.5"]
            claim = cluster.get("ipamclaims.k8s.cni.cncf.io", "vm1.wb-net", wb_ns) or {}
            assert claim.get("status") == {"ips": ["192.168.77.5/24"],
                                           "ownerPod": {"name": launcher}}
            cluster.run("delete", "pod", launcher, "-n", wb_ns, timeout=120)
        # the launchers are gone, the claim still holds its address
        assert _allocations(cluster)["5"]["id"] == f"ipamclaim/{wb_ns}/vm1.wb-net"
    finally:
        cluster.run("delete", "pod", "--all", "-n", wb_ns, "--ignore-not-found",
                    timeout=120)
        cluster.run("delete", "ipamclaims.k8s.cni.cncf.io", "vm1.wb-net", "-n", wb_ns,
                    "--ignore-not-found", check=False)


def test_four_nodes_race_for_one_pool_on_the_api_server(cluster: Kube) -> None:
    c = conf(range="10.123.0.0/22", network_name="race")
    per_node = {f"node-{n}": [f"n{n}-pod{i}" for i in range(75)] for n in range(4)}
    spec = ("kubeconfig", cluster.kubeconfig)
    pools, close = open_pools(spec, "checker")
    try:
        calls = run_nodes(spec, "ADD", c, per_node)
        assert [(cid, res) for cid, rc, res, _ in calls if rc != 0] == []
        given = {cid: addresses(res)[0].split("/")[0] for cid, _, res, _ in calls}
        assert len(given) == 300
        assert len(set(given.values())) == 300, "an address was handed out twice"
        assert allocated(pools, "race-") == given  # every address accounted for
        calls = run_nodes(spec, "DEL", c, per_node)
        assert [cid for cid, rc, _, _ in calls if rc != 0] == []
        assert allocated(pools, "race-") == {}
    finally:
        close()
        _delete_pool_objects(cluster, "race-10.123.0.0-22", "race-")
