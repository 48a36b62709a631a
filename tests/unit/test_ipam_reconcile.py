"""The IPAM reconciler: addresses of pods that are gone (their DEL never came, e.g. while
the pools were unreachable) are released; live pods, pods it cannot look up, and pods
created after its list of pods keep theirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from multihome.daemon.ipam_reconciler import IpamReconciler, run_once
from multihome.ipam.reconcile import reconcile
from multihome.store import POD, Object
from multihome.store.objects import IPPOOL, NODE_SLICE_POOL, OVERLAPPING_RESERVATION
from multihome.store.pools import ObjectPools
from multihome.store.sqlite import SQLiteStore
from support.wb import addresses, allocated, conf, run


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store.db")
    try:
        yield s
    finally:
        s.close()


def _pod(store: SQLiteStore, name: str) -> None:
    store.create(Object.from_manifest({"apiVersion": "v1", "kind": POD,
                                       "metadata": {"name": name, "namespace": "ns"}}))


def test_addresses_of_pods_deleted_without_del_are_released(store: SQLiteStore) -> None:
    pools = ObjectPools(store)
    c = conf(range="10.90.0.0/24")
    for name in ("alive", "gone1", "gone2"):
        _pod(store, name)
        assert run(pools, "ADD", c, f"cid-{name}", pod=("ns", name))[0] == 0
    # the pods go while the IPAM cannot be reached: no DEL ever reaches the pools
    store.delete(POD, "ns", "gone1")
    store.delete(POD, "ns", "gone2")

    report = run_once(store)
    assert sorted(p for _, _, p in report.released) == ["ns/gone1", "ns/gone2"]
    assert allocated(pools) == {"cid-alive": "10.90.0.1"}
    assert [d.name for d in pools.list(OVERLAPPING_RESERVATION)] == ["10.90.0.1"]
    assert run_once(store).released == []  # nothing left to do


def test_a_pod_missing_from_the_list_but_present_is_kept(store: SQLiteStore) -> None:
    pools = ObjectPools(store)
    _pod(store, "new")
    run(pools, "ADD", conf(range="10.91.0.0/24"), "cid-new", pod=("ns", "new"))
    # the list was taken before the pod was created: the fresh read saves it
    report = reconcile([pools], set(), lambda ref: ref == "ns/new")
    assert report.released == []
    assert allocated(pools) == {"cid-new": "10.91.0.1"}


def test_a_pod_that_cannot_be_looked_up_is_kept(store: SQLiteStore) -> None:
    pools = ObjectPools(store)
    run(pools, "ADD", conf(range="10.92.0.0/24"), "cid-x", pod=("ns", "x"))
    report = reconcile([pools], set(), lambda ref: None)
    assert report.released == [] and report.kept_unknown == 1
    assert allocated(pools) == {"cid-x": "10.92.0.1"}


def test_allocations_without_a_pod_are_left_to_gc(store: SQLiteStore) -> None:
    pools = ObjectPools(store)
    run(pools, "ADD", conf(range="10.93.0.0/24"), "cid-anon", pod=None)
    assert run_once(store).released == []
    assert allocated(pools) == {"cid-anon": "10.93.0.1"}


def test_node_local_slice_pools_are_reconciled_too(store: SQLiteStore,
                                                  tmp_path: Path) -> None:
    pools, local = ObjectPools(store), str(tmp_path / "node-pools.db")
    c = conf(range="10.94.0.0/24", node_slice_size="/26", network_name="sl")
    _pod(store, "p")
    run(pools, "ADD", c, "cid-p", pod=("ns", "p"), node="n1", local=local)
    store.delete(POD, "ns", "p")
    assert [p for _, _, p in run_once(store, local).released] == ["ns/p"]
    with SQLiteStore(local) as s:
        assert allocated(ObjectPools(s)) == {}


def test_an_unreachable_store_skips_the_pass(tmp_path: Path) -> None:
    def broken() -> SQLiteStore:
        raise OSError("API server unreachable")

    assert IpamReconciler(broken).pass_once() is None


def _node(store: SQLiteStore, name: str) -> None:
    store.create(Object.from_manifest({"apiVersion": "v1", "kind": "Node",
                                       "metadata": {"name": name}}))


def test_slices_of_nodes_that_are_gone_are_given_back(store: SQLiteStore) -> None:
    pools = ObjectPools(store)
    c = conf(range="10.95.0.0/24", node_slice_size="/26", network_name="sl")
    for node in ("n1", "n2"):
        _node(store, node)
        assert run(pools, "ADD", c, f"cid-{node}", pod=None, node=node)[0] == 0
    store.delete("Node", "", "n2")  # the node left the cluster, its pods with it
    run_once(store)
    nsp = pools.read(NODE_SLICE_POOL, "sl")
    assert nsp is not None and nsp.status is not None
    assert [e["nodeName"] for e in nsp.status["allocations"]] == ["n1", "", "", ""]
    assert [d.name for d in pools.list(IPPOOL)] == ["sl-n1-10.95.0.0-26"]
    # the freed slice goes to the next node that asks
    _node(store, "n3")
    assert addresses(run(pools, "ADD", c, "cid-n3", pod=None, node="n3")[1]) == [
        "10.95.0.64/24"]


def test_without_node_objects_no_slice_is_given_back(store: SQLiteStore) -> None:
    pools = ObjectPools(store)
    c = conf(range="10.96.0.0/24", node_slice_size="/26", network_name="lab")
    run(pools, "ADD", c, "cid", pod=None, node="n1")
    run_once(store)  # the lab has no Node objects: it cannot tell, so it keeps all
    nsp = pools.read(NODE_SLICE_POOL, "lab")
    assert nsp is not None and nsp.status is not None
    assert nsp.status["allocations"][0]["nodeName"] == "n1"
