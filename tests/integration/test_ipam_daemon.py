"""The daemon serving a plugin directly (a runtime's conflist, not through the engine)
keeps the cluster-wide IPAM's pools in the daemon's store, never a file of its own."""

from __future__ import annotations

import pytest

from multihome.store.objects import IPPOOL
from multihome.store.pools import ObjectPools
from multihome.store.sqlite import SQLiteStore
from support.daemon_world import Node
from support.netns import Netns, unique

pytestmark = pytest.mark.netns


def test_direct_calls_use_the_daemons_store(node: Node, netns: Netns) -> None:
    store = node.tmp / "daemon-store.db"
    node.write_default()
    node.start("--store", str(store))
    conf = {"cniVersion": "1.0.0", "name": "direct-wb", "type": "bridge",
            "bridge": node.bridge,
            "ipam": {"type": "whereabouts", "range": "10.64.0.0/24"}}
    env = {"MULTIHOME_SOCKET": node.socket}
    cid = unique("c")
    res = node.cni("ADD", cid, netns, exe="bridge", conf=conf, env=env).ok()
    assert [ip["address"] for ip in res["ips"]] == ["10.64.0.1/24"]
    with SQLiteStore(store) as s:
        pool = ObjectPools(s).read(IPPOOL, "10.64.0.0-24")
        assert pool is not None
        assert pool.spec["allocations"] == {
            "1": {"id": cid, "podref": f"default/{cid}", "ifname": "eth0"}}
    node.cni("DEL", cid, netns, exe="bridge", conf=conf, env=env).ok()
    with SQLiteStore(store) as s:
        pool = ObjectPools(s).read(IPPOOL, "10.64.0.0-24")
        assert pool is not None and pool.spec["allocations"] == {}
