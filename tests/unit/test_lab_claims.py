"""The lab makes an IPAMClaim per VM NIC whose NAD asks for persistent IPs
(`allowPersistentIPs: true`), names it in the launcher pod's selection, and deletes it
(freeing its address) with the VM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from multihome.lab import claims as vmclaims
from multihome.store import NAD, Object
from multihome.store.objects import IPAM_CLAIM
from multihome.store.pools import ObjectPools
from multihome.store.sqlite import SQLiteStore
from support.wb import addresses, allocated, conf, run, with_claim


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store.db")
    try:
        yield s
    finally:
        s.close()


def _nad(store: SQLiteStore, name: str, config: dict[str, object]) -> None:
    store.create(Object.from_manifest({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD,
        "metadata": {"name": name, "namespace": "vms"},
        "spec": {"config": json.dumps(config)}}))


def test_a_persistent_network_gets_a_claim_per_vm_nic(store: SQLiteStore) -> None:
    _nad(store, "sticky", dict(conf(range="10.120.0.0/24"), allowPersistentIPs=True))
    _nad(store, "plain", conf(range="10.121.0.0/24"))
    selection = vmclaims.with_claims(store, "vms", "vm1", "virt-launcher-vm1",
                                     "sticky, plain@data")
    assert json.loads(selection) == [
        {"name": "sticky", "namespace": "vms", "ipam-claim-reference": "vm1.sticky"},
        {"name": "plain", "namespace": "vms", "interface": "data"},
    ]
    claim = store.get(IPAM_CLAIM, "vms", "vm1.sticky")
    assert claim.spec == {"network": "vms/sticky", "interface": ""}
    # a relaunch finds the claim it made
    assert vmclaims.with_claims(store, "vms", "vm1", "virt-launcher-vm1",
                                "sticky, plain@data") == selection
    assert vmclaims.with_claims(store, "vms", "vm1", "p", "plain") == "plain"


def test_deleting_the_vm_deletes_its_claims_and_frees_their_addresses(
        store: SQLiteStore) -> None:
    _nad(store, "sticky", dict(conf(range="10.122.0.0/24"), allowPersistentIPs=True))
    vmclaims.with_claims(store, "vms", "vm2", "l", "sticky")
    vmclaims.with_claims(store, "vms", "other", "l", "sticky")
    pools = ObjectPools(store)
    rc, res = run(pools, "ADD", with_claim(conf(range="10.122.0.0/24"), "vm2.sticky"),
                  "launcher", pod=("vms", "launcher"))
    assert rc == 0, res
    assert addresses(res) == ["10.122.0.1/24"]
    assert vmclaims.drop(store, "vms", "vm2") == ["10.122.0.1"]
    assert [c.name for c in store.list(IPAM_CLAIM, "vms")] == ["other.sticky"]
    assert allocated(pools) == {}


def _claims_of(selection: str) -> list[str | None]:
    return [e.get("ipam-claim-reference") for e in json.loads(selection)]


def test_each_nic_gets_its_own_claim_even_on_one_nad_and_keeps_it(store: SQLiteStore) -> None:
    _nad(store, "sticky", dict(conf(range="10.123.0.0/24"), allowPersistentIPs=True))
    first = vmclaims.with_claims(store, "vms", "vm3", "l", "sticky, sticky")
    assert _claims_of(first) == ["vm3.sticky", "vm3.sticky.net2"]
    # a restart or a migration names each NIC's network, interface and MAC: same claims
    again = json.dumps([{"name": "sticky", "namespace": "vms", "interface": i, "mac": m}
                        for i, m in (("net1", "02:00:00:00:00:01"),
                                     ("net2", "02:00:00:00:00:02"))])
    assert _claims_of(vmclaims.with_claims(store, "vms", "vm3", "l2", again)) == \
        _claims_of(first)
    # a hot-plugged NIC (appended, interface chosen) leaves the others' claims alone
    plugged = json.dumps([*json.loads(first), {"name": "sticky", "interface": "net5"}])
    assert _claims_of(vmclaims.with_claims(store, "vms", "vm3", "l", plugged)) == \
        ["vm3.sticky", "vm3.sticky.net2", "vm3.sticky.net5"]
    # so the two NICs get two addresses, not one shared
    pools = ObjectPools(store)
    got = []
    for ifname, claim in (("net1", "vm3.sticky"), ("net2", "vm3.sticky.net2")):
        rc, res = run(pools, "ADD", with_claim(conf(range="10.123.0.0/24"), claim),
                      "launcher", ifname=ifname, pod=("vms", "launcher"))
        assert rc == 0, res
        got += addresses(res)
    assert got == ["10.123.0.1/24", "10.123.0.2/24"]
