"""Several nodes (each its own process, its own connection and node name) allocating from
one whereabouts pool at once, hundreds of pods, pools in one SQLite file: no address is
handed out twice, and every address is accounted for, on ADD and on DEL."""

from __future__ import annotations

from pathlib import Path

import pytest

from multihome.store.objects import OVERLAPPING_RESERVATION
from multihome.store.pools import ObjectPools
from multihome.store.sqlite import SQLiteStore
from support.wb import addresses, allocated, conf, run_nodes

NODES = 4
PODS_PER_NODE = 75  # 300 pods


def _per_node() -> dict[str, list[str]]:
    return {f"node-{n}": [f"n{n}-pod{i}" for i in range(PODS_PER_NODE)] for n in range(NODES)}


@pytest.mark.parametrize("slices", [False, True], ids=["one-pool", "node-slices"])
def test_no_duplicates_under_concurrent_nodes(tmp_path: Path, slices: bool) -> None:
    db = str(tmp_path / "pools.db")
    SQLiteStore(db).close()  # the file exists before the nodes race to open it
    extra = {"node_slice_size": "/25", "network_name": "load"} if slices else {}
    c = conf(range="10.70.0.0/22", exclude=["10.70.0.0/30"], **extra)
    per_node = _per_node()

    calls = run_nodes(("sqlite", db), "ADD", c, per_node)
    failed = [(cid, res) for cid, rc, res, _ in calls if rc != 0]
    assert failed == []
    given = {cid: addresses(res)[0].split("/")[0] for cid, _, res, _ in calls}
    assert len(given) == NODES * PODS_PER_NODE
    assert len(set(given.values())) == len(given), "an address was handed out twice"
    assert not any(ip in ("10.70.0.1", "10.70.0.2", "10.70.0.3") for ip in given.values())
    with SQLiteStore(db) as s:
        pools = ObjectPools(s)
        assert allocated(pools) == given  # every address accounted for, none extra
        if not slices:
            assert len(pools.list(OVERLAPPING_RESERVATION)) == len(given)

    # half of every node's pods go away, at once
    gone = {node: cids[::2] for node, cids in per_node.items()}
    calls = run_nodes(("sqlite", db), "DEL", c, gone)
    assert [cid for cid, rc, _, _ in calls if rc != 0] == []
    removed = {cid for cids in gone.values() for cid in cids}
    with SQLiteStore(db) as s:
        pools = ObjectPools(s)
        assert allocated(pools) == {k: v for k, v in given.items() if k not in removed}
        if not slices:
            assert len(pools.list(OVERLAPPING_RESERVATION)) == len(given) - len(removed)
