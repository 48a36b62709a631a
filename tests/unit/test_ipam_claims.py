"""Persistent IPs through IPAMClaims: the address is bound to the claim, not the pod, so
the next pod naming the claim gets it again; the claim's status.ips is written; DEL and
GC of a pod leave it; it goes when the claim goes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from multihome.daemon.ipam_reconciler import run_once
from multihome.store.objects import IPAM_CLAIM, IPPOOL
from multihome.store.pools import ObjectPools
from multihome.store.sqlite import SQLiteStore
from support.wb import addresses, allocated, claim_object, conf, run, with_claim


@pytest.fixture
def pools(tmp_path: Path) -> Iterator[ObjectPools]:
    store = SQLiteStore(tmp_path / "store.db")
    try:
        yield ObjectPools(store)
    finally:
        store.close()


C = conf(range="10.110.0.0/24")


def test_the_next_pod_naming_the_claim_gets_the_same_address(pools: ObjectPools) -> None:
    claim_object(pools, "vms", "vm1.nic1")
    run(pools, "ADD", C, "other", pod=("vms", "someone"))  # takes .1
    rc, first = run(pools, "ADD", with_claim(C, "vm1.nic1"), "launcher-1",
                    pod=("vms", "virt-launcher-vm1-aaaaa"))
    assert rc == 0, first
    assert addresses(first) == ["10.110.0.2/24"]
    claim = pools.read(IPAM_CLAIM, "vm1.nic1", "vms")
    assert claim is not None and claim.status == {
        "ips": ["10.110.0.2/24"], "ownerPod": {"name": "virt-launcher-vm1-aaaaa"}}
    # the VM stops: its launcher pod's DEL leaves the claim's address allocated
    assert run(pools, "DEL", with_claim(C, "vm1.nic1"), "launcher-1",
               pod=("vms", "virt-launcher-vm1-aaaaa")) == (0, None)
    assert allocated(pools)["ipamclaim/vms/vm1.nic1"] == "10.110.0.2"
    run(pools, "ADD", C, "third", pod=("vms", "p3"))  # .3, not the claim's .2
    # the VM starts again: a new launcher pod, a new sandbox, the same address
    rc, again = run(pools, "ADD", with_claim(C, "vm1.nic1"), "launcher-2",
                    pod=("vms", "virt-launcher-vm1-bbbbb"))
    assert addresses(again) == ["10.110.0.2/24"]
    claim = pools.read(IPAM_CLAIM, "vm1.nic1", "vms")
    assert claim is not None and claim.status is not None
    assert claim.status["ownerPod"] == {"name": "virt-launcher-vm1-bbbbb"}


def test_gc_keeps_claim_addresses_and_the_reconciler_frees_them_with_the_claim(
        pools: ObjectPools) -> None:
    claim_object(pools, "vms", "vm2.nic1")
    run(pools, "ADD", with_claim(C, "vm2.nic1"), "launcher", pod=("vms", "launcher"))
    gc = dict(C, cniVersion="1.1.0", **{"cni.dev/valid-attachments": []})
    assert run(pools, "GC", gc) == (0, None)
    assert "ipamclaim/vms/vm2.nic1" in allocated(pools)
    # the launcher pod is gone (no Pod object): the claim still holds the address
    assert run_once(pools.store).released == []
    pools.store.delete(IPAM_CLAIM, "vms", "vm2.nic1")
    released = run_once(pools.store).released
    assert [ip for _, ip, _ in released] == ["10.110.0.1"]
    assert allocated(pools) == {}


def test_a_recorded_address_is_asked_for_again(pools: ObjectPools) -> None:
    c = conf(range="10.111.0.0/24", enable_overlapping_ranges=False)
    claim_object(pools, "vms", "vm3.nic1")
    run(pools, "ADD", c, "a", pod=("vms", "a"))
    run(pools, "ADD", with_claim(c, "vm3.nic1"), "l1", pod=("vms", "l1"))  # .2
    for doc in pools.list(IPPOOL):  # the pool is lost (deleted, restored from backup…)
        pools.remove(IPPOOL, doc.name)
    rc, res = run(pools, "ADD", with_claim(c, "vm3.nic1"), "l2", pod=("vms", "l2"))
    assert rc == 0, res
    assert addresses(res) == ["10.111.0.2/24"]  # the claim's, not the lowest free (.1)
    for doc in pools.list(IPPOOL):
        pools.remove(IPPOOL, doc.name)
    run(pools, "ADD", c, "b", pod=("vms", "b"))
    run(pools, "ADD", c, "c", pod=("vms", "c"))  # .1, .2: the claim's address is taken
    rc, res = run(pools, "ADD", with_claim(c, "vm3.nic1"), "l3", pod=("vms", "l3"))
    assert rc == 1 and "held by another owner" in res["msg"]


def test_reservations_keep_a_claims_address_when_its_pool_is_lost(
        pools: ObjectPools) -> None:
    claim_object(pools, "vms", "vm4.nic1")
    run(pools, "ADD", with_claim(C, "vm4.nic1"), "l1", pod=("vms", "l1"))  # .1
    for doc in pools.list(IPPOOL):
        pools.remove(IPPOOL, doc.name)
    # the cluster-wide reservation still names the claim: nobody else gets .1
    assert addresses(run(pools, "ADD", C, "other", pod=("vms", "o"))[1]) == ["10.110.0.2/24"]
    assert addresses(run(pools, "ADD", with_claim(C, "vm4.nic1"), "l2",
                         pod=("vms", "l2"))[1]) == ["10.110.0.1/24"]


def test_a_missing_claim_is_try_again_later(pools: ObjectPools) -> None:
    rc, err = run(pools, "ADD", with_claim(C, "not-yet"), "l", pod=("vms", "l"))
    assert rc == 1 and err["code"] == 11 and "vms/not-yet" in err["msg"]
    assert allocated(pools) == {}


@pytest.mark.parametrize("ref", ["Bad_Name", 5, "../x"])
def test_a_bad_claim_reference_is_invalid_config(pools: ObjectPools, ref: object) -> None:
    config = dict(C, args={"cni": {"ipam-claim-reference": ref}})
    rc, err = run(pools, "ADD", config, "l", pod=("vms", "l"))
    assert rc == 1 and err["code"] == 7


def test_a_claim_needs_the_pods_namespace(pools: ObjectPools) -> None:
    rc, err = run(pools, "ADD", with_claim(C, "vm"), "l", pod=None)
    assert rc == 1 and err["code"] == 7 and "namespace" in err["msg"]
