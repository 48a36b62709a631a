"""The cluster-wide IPAM over the Kubernetes API store (fixture API server): whereabouts'
objects at whereabouts' paths, 409s answered by re-reading, and several nodes (each its
own process and API connection) allocating from one pool at once without a duplicate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from multihome.k8s.client import ApiClient
from multihome.k8s.store import KubeStore
from multihome.store.objects import NODE_SLICE_POOL, OVERLAPPING_RESERVATION
from multihome.store.pools import ObjectPools
from multihome.store.sqlite import SQLiteStore
from support.fake_apiserver import FakeApiServer
from support.wb import addresses, allocated, conf, run, run_nodes

GROUP = "apis/whereabouts.cni.cncf.io/v1alpha1"


@pytest.fixture
def pools(api: ApiClient) -> Iterator[ObjectPools]:
    store = KubeStore(api, "node-a", watch=False, retry_delay_s=0.01)
    try:
        yield ObjectPools(store)
    finally:
        store.close()


def test_pool_objects_as_whereabouts_writes_them(apiserver: FakeApiServer,
                                                 pools: ObjectPools) -> None:
    rc, res = run(pools, "ADD", conf(range="10.80.0.0/24"), "c1", pod=("ns", "p"))
    assert rc == 0, res
    pool = apiserver.objects[(f"{GROUP}/ippools", "kube-system", "10.80.0.0-24")]
    assert pool["apiVersion"] == "whereabouts.cni.cncf.io/v1alpha1"
    assert pool["kind"] == "IPPool"
    assert pool["spec"] == {"range": "10.80.0.0/24", "allocations": {
        "1": {"id": "c1", "podref": "ns/p", "ifname": "net1"}}}
    reservation = apiserver.objects[(f"{GROUP}/overlappingrangeipreservations", "kube-system",
                                     "10.80.0.1")]
    assert reservation["spec"] == {"containerid": "c1", "podref": "ns/p", "ifname": "net1"}


def test_conflicts_are_retried_not_fatal(apiserver: FakeApiServer,
                                         pools: ObjectPools) -> None:
    c = conf(range="10.81.0.0/24")
    run(pools, "ADD", c, "first")
    apiserver.conflicts_to_inject = 5
    rc, res = run(pools, "ADD", c, "second")
    assert rc == 0, res
    assert addresses(res) == ["10.81.0.2/24"]
    assert sorted(allocated(pools).values()) == ["10.81.0.1", "10.81.0.2"]
    # the reservation made before the lost writes was kept and used, never remade
    assert sorted(d.name for d in pools.list(OVERLAPPING_RESERVATION)) == [
        "10.81.0.1", "10.81.0.2"]
    posts = [p for m, p in apiserver.requests if m == "POST" and "overlapping" in p]
    assert len(posts) == 2
    assert not any(m == "DELETE" for m, _ in apiserver.requests)


def test_node_slice_assignment_goes_through_status(apiserver: FakeApiServer,
                                                   pools: ObjectPools) -> None:
    c = conf(range="10.82.0.0/24", node_slice_size="/26", network_name="sl")
    rc, res = run(pools, "ADD", c, "a", node="node-a")
    assert rc == 0, res
    nsp = pools.read(NODE_SLICE_POOL, "sl")
    assert nsp is not None and nsp.status is not None
    assert nsp.status["allocations"][0] == {"nodeName": "node-a", "sliceRange": "10.82.0.0/26"}


def test_node_slice_fast_path_makes_no_api_request_per_pod(
        apiserver: FakeApiServer, pools: ObjectPools, tmp_path: Path) -> None:
    c = conf(range="10.84.0.0/24", node_slice_size="/26", network_name="fast",
             enable_overlapping_ranges=False)
    local = str(tmp_path / "node-pools.db")
    assert run(pools, "ADD", c, "first", node="node-a", local=local)[0] == 0
    before = len(apiserver.requests)
    for i in range(20):
        rc, res = run(pools, "ADD", c, f"pod{i}", node="node-a", local=local)
        assert rc == 0, res
    # one read of the NodeSlicePool per pod (which slice is ours), no write at all
    assert [m for m, _ in apiserver.requests[before:]] == ["GET"] * 20
    with SQLiteStore(local) as s:
        assert len(allocated(ObjectPools(s))) == 21
    assert run(pools, "DEL", c, "pod3", node="node-a", local=local) == (0, None)
    with SQLiteStore(local) as s:
        assert "pod3" not in allocated(ObjectPools(s))


@pytest.mark.parametrize("slices", [False, True], ids=["one-pool", "node-slices"])
def test_no_duplicates_under_concurrent_nodes(apiserver: FakeApiServer, pools: ObjectPools,
                                              slices: bool) -> None:
    extra = {"node_slice_size": "/26", "network_name": "load"} if slices else {}
    c = conf(range="10.83.0.0/24", exclude=["10.83.0.0/30"], **extra)
    per_node = {f"node-{n}": [f"n{n}-pod{i}" for i in range(50)] for n in range(4)}
    calls = run_nodes(("api", apiserver.url), "ADD", c, per_node)
    assert [(cid, res) for cid, rc, res, _ in calls if rc != 0] == []
    given = {cid: addresses(res)[0].split("/")[0] for cid, _, res, _ in calls}
    assert len(given) == 200
    assert len(set(given.values())) == 200, "an address was handed out twice"
    assert allocated(pools) == given
    if not slices:
        assert any(m == "PUT" and "/ippools/" in p for m, p in apiserver.requests)
