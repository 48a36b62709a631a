"""Node slices (`node_slice_size`): each node takes a slice of the range and allocates
from it alone, so pods on different nodes never race for one pool.

The NodeSlicePool (named after the network) lists every slice in `status.allocations`
as `{nodeName, sliceRange}`, `nodeName` empty while free, as whereabouts writes it. A node
takes the first free slice with a version-guarded write of that object (once per node and
network, not per pod); its addresses then live in the node's own IPPool
(`<network>-<node>-<slice>`), which only that node writes, so its writes never conflict.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from multihome.cni.errors import InvalidConfig
from multihome.ipam.pools import PoolExhausted, Retry, allocations, pool_name, unreserve
from multihome.ipam.whereabouts_config import PoolRange, WhereaboutsConfig
from multihome.store.objects import IPPOOL, NODE_SLICE_POOL
from multihome.store.pools import PoolDoc, PoolStore

# Lost races of one pass freeing a NodeSlicePool's slices, before the next pass.
MAX_SLICE_RETRIES = 5


def slice_pool_name(cfg: WhereaboutsConfig) -> str:
    return (cfg.network_name or cfg.name).lower()


def _fresh(cfg: WhereaboutsConfig) -> PoolDoc:
    whole = cfg.ranges[0].subnet
    assert cfg.node_slice_prefix is not None
    subnets = list(whole.subnets(new_prefix=cfg.node_slice_prefix))
    return PoolDoc(slice_pool_name(cfg),
                   {"range": str(whole), "sliceSize": f"/{cfg.node_slice_prefix}"},
                   {"allocations": [{"nodeName": "", "sliceRange": str(s)} for s in subnets]})


def _entries(doc: PoolDoc) -> list[dict[str, Any]]:
    raw = (doc.status or {}).get("allocations")
    return [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []


def _check_same(doc: PoolDoc, cfg: WhereaboutsConfig) -> None:
    want = _fresh(cfg).spec
    have = {k: doc.spec.get(k) for k in want}
    if have != want:
        raise InvalidConfig(f"NodeSlicePool {doc.name} was made for range {have['range']} "
                            f"in slices of {have['sliceSize']}, the config says "
                            f"{want['range']} in slices of {want['sliceSize']}; give the "
                            "network another network_name")


def _slice_range(cfg: WhereaboutsConfig, text: str) -> PoolRange:
    whole = cfg.ranges[0]
    net = ipaddress.ip_network(text)
    start = max(net.network_address, whole.start, key=int)
    end = min(net.broadcast_address, whole.end, key=int)
    return PoolRange(net, start, end, whole.exclude, whole.gateway)


def node_range(store: PoolStore, cfg: WhereaboutsConfig, node: str, *,
               take: bool) -> PoolRange | None:
    """The slice `node` holds; with `take`, the first free one is assigned if it holds
    none (None without `take` when it holds none: nothing of this network is here)."""
    retry = Retry(f"taking a slice of NodeSlicePool {slice_pool_name(cfg)} for node {node}")
    while True:
        with store.transaction():
            taken = _take(store, cfg, node, take=take)
        if not isinstance(taken, _Lost):
            return taken
        retry.again()


class _Lost:
    """Another writer won the race: read again."""


def _take(store: PoolStore, cfg: WhereaboutsConfig, node: str, *,
          take: bool) -> PoolRange | _Lost | None:
    """One read-decide-write of node_range."""
    doc = store.read(NODE_SLICE_POOL, slice_pool_name(cfg))
    if doc is None:
        if not take:
            return None
        doc = _fresh(cfg)
    else:
        _check_same(doc, cfg)
    entries = _entries(doc)
    if not entries:
        # created but its status not written yet (the API server takes status in a
        # second write, through /status): the full list, written version-guarded
        entries = _entries(_fresh(cfg))
    mine = next((e for e in entries if e.get("nodeName") == node), None)
    if mine is not None:
        return _slice_range(cfg, str(mine.get("sliceRange")))
    if not take:
        return None
    free = next((e for e in entries if not e.get("nodeName")), None)
    if free is None:
        raise PoolExhausted(f"NodeSlicePool {doc.name}: every slice of "
                            f"{cfg.ranges[0].cidr} is taken by another node; use a "
                            "longer node_slice_size")
    free["nodeName"] = node
    doc.status = dict(doc.status or {}, allocations=entries)
    if store.write(NODE_SLICE_POOL, doc) is not None:
        return _slice_range(cfg, str(free["sliceRange"]))
    return _Lost()


def free_slices_of_gone_nodes(store: PoolStore, nodes: set[str]) -> list[tuple[str, str, str]]:
    """Give back the slices of nodes that no longer exist ((pool, slice, node) each), and
    drop those nodes' slice pools kept in `store` (their pods went with the node). The
    caller passes the cluster's node names; an empty set frees nothing (cannot tell)."""
    if not nodes:
        return []
    freed: list[tuple[str, str, str]] = []
    for doc in store.list(NODE_SLICE_POOL):
        for _ in range(MAX_SLICE_RETRIES):
            with store.transaction():
                entries = _entries(doc)
                gone = [e for e in entries
                        if e.get("nodeName") and e.get("nodeName") not in nodes]
                if not gone:
                    break
                for e in gone:
                    freed.append((doc.name, str(e.get("sliceRange")), str(e.get("nodeName"))))
                    e["nodeName"] = ""
                doc.status = dict(doc.status or {}, allocations=entries)
                if store.write(NODE_SLICE_POOL, doc) is not None:
                    break
            del freed[len(freed) - len(gone):]  # lost the race: read again
            again = store.read(NODE_SLICE_POOL, doc.name)
            if again is None:
                break
            doc = again
    for nsp, slice_range, node in freed:
        net = ipaddress.ip_network(slice_range)
        whole = PoolRange(net, net.network_address, net.broadcast_address)
        for network in (nsp, ""):
            name = pool_name(slice_range, network, node)
            held = allocations(store.read(IPPOOL, name), whole)
            for ip, owner in held.items():  # their cluster-wide reservations too
                for reservation_network in (nsp, ""):
                    unreserve(store, ip, owner, reservation_network)
            store.remove(IPPOOL, name)
    return freed
