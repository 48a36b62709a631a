"""Driving the cluster-wide IPAM (type whereabouts) through the skel, as a runtime would."""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

from multihome.cni import skel
from multihome.ipam import whereabouts
from multihome.store import Object
from multihome.store.objects import IPAM_CLAIM, IPPOOL
from multihome.store.pools import ObjectPools, PoolStore
from multihome.store.sqlite import SQLiteStore


def conf(version: str = "1.0.0", name: str = "wbnet", **ipam: Any) -> dict[str, Any]:
    """A NAD config as whereabouts users write it (`ipam` keys passed through as given)."""
    return {"cniVersion": version, "name": name, "type": "bridge",
            "ipam": {"type": "whereabouts", **ipam}}


def run(store: PoolStore | None, command: str, config: dict[str, Any], cid: str = "c1",
        ifname: str = "net1", pod: tuple[str, str] | None = ("default", "p1"),
        node: str = "", local: str = "") -> tuple[int, Any]:
    """One CNI call with the pools in `store` (None: the plugin's own default) as node
    `node` (default: $NODE_NAME), slice allocations in SQLite file `local` if given."""
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/var/run/netns/x",
           "CNI_IFNAME": ifname, "CNI_PATH": "/usr/lib/cni"}
    if pod:
        env["CNI_ARGS"] = (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod[0]};"
                           f"K8S_POD_NAME={pod[1]}")
    stdin = json.dumps(config).encode()
    if store is None:
        rc, out = skel.dispatch(whereabouts, env, stdin)
    else:
        with whereabouts.bound(store, node, local):
            rc, out = skel.dispatch(whereabouts, env, stdin)
    return rc, json.loads(out) if out else None


def with_claim(config: dict[str, Any], claim: str) -> dict[str, Any]:
    """The config as the engine passes it for a selection with `ipam-claim-reference`."""
    return dict(config, args={"cni": {"ipam-claim-reference": claim}})


def claim_object(pools: ObjectPools, namespace: str, name: str, network: str = "wbnet",
                 ) -> None:
    """An IPAMClaim as KubeVirt's ipam-extensions makes one per VM NIC."""
    pools.store.create(Object.from_manifest({
        "apiVersion": "k8s.cni.cncf.io/v1alpha1", "kind": IPAM_CLAIM,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"network": network, "interface": "pod16367aacb67"}}))


def addresses(result: dict[str, Any]) -> list[str]:
    return [ip["address"] for ip in result["ips"]]


def pool_allocations(store: PoolStore, name: str) -> dict[str, dict[str, str]]:
    doc = store.read(IPPOOL, name)
    assert doc is not None, f"IPPool {name} does not exist"
    allocs = doc.spec.get("allocations")
    assert isinstance(allocs, dict)
    return allocs


# -- several "nodes" at once ---------------------------------------------------------------

def open_pools(spec: tuple[str, str], node: str) -> tuple[PoolStore, Callable[[], None]]:
    """A node's own connection to the shared pools: ("sqlite", path), ("api", url) of an
    API server that wants no credentials, or ("kubeconfig", path)."""
    kind, where = spec
    if kind == "sqlite":
        sqlite = SQLiteStore(where)
        return ObjectPools(sqlite), sqlite.close
    from multihome.k8s.client import ApiClient, Credentials, credentials_from_kubeconfig
    from multihome.k8s.store import KubeStore

    creds = Credentials(server=where) if kind == "api" else credentials_from_kubeconfig(where)
    kube = KubeStore(ApiClient(creds, timeout_s=10.0), node, watch=False)
    return ObjectPools(kube), kube.shutdown


def node_worker(job: tuple[tuple[str, str], str, str, list[str], dict[str, Any]],
                ) -> list[tuple[str, int, Any, float]]:
    """One node's calls in sequence: (containerID, rc, output, seconds) each. Top-level so
    that a process pool can run it."""
    spec, node, command, cids, config = job
    pools, close = open_pools(spec, node)
    out = []
    try:
        for cid in cids:
            start = time.perf_counter()
            rc, res = run(pools, command, config, cid, pod=("load", cid), node=node)
            out.append((cid, rc, res, time.perf_counter() - start))
    finally:
        close()
    return out


def run_nodes(spec: tuple[str, str], command: str, config: dict[str, Any],
              per_node: dict[str, list[str]]) -> list[tuple[str, int, Any, float]]:
    """Every node's calls at once, each node its own process."""
    ctx = multiprocessing.get_context("fork")
    jobs = [(spec, node, command, cids, config) for node, cids in per_node.items()]
    with ctx.Pool(len(jobs)) as pool:
        results = pool.map(node_worker, jobs)
    return [r for rs in results for r in rs]


def allocated(pools: PoolStore, prefix: str = "") -> dict[str, str]:
    """containerID -> address over every IPPool whose name starts with `prefix` (offsets
    resolved from each pool's range)."""
    out: dict[str, str] = {}
    for doc in pools.list(IPPOOL):
        if not doc.name.startswith(prefix):
            continue
        base = int(ipaddress.ip_interface(doc.spec["range"]).ip)
        family = ipaddress.ip_interface(doc.spec["range"]).version
        for offset, owner in doc.spec.get("allocations", {}).items():
            ip = str(ipaddress.ip_address(base + int(offset)) if family == 4
                     else ipaddress.IPv6Address(base + int(offset)))
            assert owner["id"] not in out, f"{owner['id']} holds two addresses"
            out[owner["id"]] = ip
    return out
