"""A NAD written for whereabouts, unchanged, through the engine with real namespaces and a
bridge: the pools live in the engine's store, as whereabouts' IPPool objects."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from multihome.attach import engine
from multihome.attach import hotplug as attach_hotplug
from multihome.attach.status import NETWORK_STATUS_ANNOTATION
from multihome.store import POD, Object
from multihome.store.objects import IPAM_CLAIM, IPPOOL
from multihome.store.pools import DEFAULT_POOL_NAMESPACE
from support.engine_world import World
from support.netns import Netns

pytestmark = pytest.mark.netns

WHEREABOUTS_NAD = {
    "cniVersion": "0.3.1", "name": "wb-net", "type": "bridge",
    "ipam": {"type": "whereabouts", "range": "10.63.0.0/24",
             "exclude": ["10.63.0.0/28"], "gateway": "10.63.0.1"},
}


def _secondary_ips(w: World, ns: str, name: str) -> list[str]:
    status = json.loads(w.store.get(POD, ns, name).annotations[NETWORK_STATUS_ANNOTATION])
    return [ip for entry in status[1:] for ip in entry["ips"]]


def test_two_pods_get_distinct_addresses_and_delete_releases(
        world: World, netns_factory: Callable[..., Netns]) -> None:
    world.nad("ns1", "wb-net", dict(WHEREABOUTS_NAD, bridge=world.bridge()))
    a, b = netns_factory("mhwa"), netns_factory("mhwb")
    pa, pb = world.pod("ns1", "pa", "wb-net"), world.pod("ns1", "pb", "wb-net")
    engine.add(world.conf(), world.store, world.request(a, pa))
    engine.add(world.conf(), world.store, world.request(b, pb))

    assert _secondary_ips(world, "ns1", "pa") == ["10.63.0.16"]
    assert _secondary_ips(world, "ns1", "pb") == ["10.63.0.17"]
    assert "10.63.0.17/24" in b.run("ip", "-o", "addr", "show", "net1").stdout
    pool = world.store.get(IPPOOL, DEFAULT_POOL_NAMESPACE, "10.63.0.0-24")
    assert pool.body["apiVersion"] == "whereabouts.cni.cncf.io/v1alpha1"
    assert pool.spec == {"range": "10.63.0.0/24", "allocations": {
        "16": {"id": f"cid-{a.name}", "podref": "ns1/pa", "ifname": "net1"},
        "17": {"id": f"cid-{b.name}", "podref": "ns1/pb", "ifname": "net1"}}}

    engine.delete(world.conf(), world.store, world.request(a, pa))
    engine.delete(world.conf(), world.store, world.request(b, pb))
    pool = world.store.get(IPPOOL, DEFAULT_POOL_NAMESPACE, "10.63.0.0-24")
    assert pool.spec["allocations"] == {}


def test_a_claim_keeps_the_address_across_launcher_pods(
        world: World, netns_factory: Callable[..., Netns]) -> None:
    world.nad("vms", "wb-net", dict(WHEREABOUTS_NAD, bridge=world.bridge()))
    world.store.create(Object.from_manifest({
        "apiVersion": "k8s.cni.cncf.io/v1alpha1", "kind": IPAM_CLAIM,
        "metadata": {"name": "vm1.nic1", "namespace": "vms"},
        "spec": {"network": "wb-net", "interface": "net1"}}))
    selection = json.dumps([{"name": "wb-net", "ipam-claim-reference": "vm1.nic1"}])
    first, second = netns_factory("mhwc"), netns_factory("mhwd")
    launcher1 = world.pod("vms", "virt-launcher-vm1-a", selection)
    engine.add(world.conf(), world.store, world.request(first, launcher1))
    assert _secondary_ips(world, "vms", "virt-launcher-vm1-a") == ["10.63.0.16"]
    engine.delete(world.conf(), world.store, world.request(first, launcher1))

    launcher2 = world.pod("vms", "virt-launcher-vm1-b", selection)
    engine.add(world.conf(), world.store, world.request(second, launcher2))
    assert _secondary_ips(world, "vms", "virt-launcher-vm1-b") == ["10.63.0.16"]
    claim = world.store.get(IPAM_CLAIM, "vms", "vm1.nic1")
    assert claim.status == {"ips": ["10.63.0.16/24"],
                            "ownerPod": {"name": "virt-launcher-vm1-b"}}
    engine.delete(world.conf(), world.store, world.request(second, launcher2))


def test_a_hot_plugged_whereabouts_network_allocates_from_the_engines_store(
        world: World, netns_factory: Callable[..., Netns], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # where the plugin would keep its pools when given none: never the system's
    default = tmp_path / "plugin-default.db"
    monkeypatch.setenv("MULTIHOME_STORE", str(default))
    world.nad("ns3", "wb-net", dict(WHEREABOUTS_NAD, bridge=world.bridge()))
    ns = netns_factory("mhwh")
    pod = world.pod("ns3", "ph")
    engine.add(world.conf(), world.store, world.request(ns, pod))
    world.pod("ns3", "ph", "wb-net")  # the selection edited on the running pod
    try:
        outcome = attach_hotplug.hotplug(world.conf(), world.store, f"cid-{ns.name}")
        assert [a.ifname for a in outcome.added] == ["net1"]
        assert _secondary_ips(world, "ns3", "ph") == ["10.63.0.16"]
        pool = world.store.get(IPPOOL, DEFAULT_POOL_NAMESPACE, "10.63.0.0-24")
        assert pool.spec["allocations"] == {
            "16": {"id": f"cid-{ns.name}", "podref": "ns3/ph", "ifname": "net1"}}
        assert not default.exists()
    finally:
        engine.delete(world.conf(), world.store, world.request(ns, pod))
    pool = world.store.get(IPPOOL, DEFAULT_POOL_NAMESPACE, "10.63.0.0-24")
    assert pool.spec["allocations"] == {}
