"""Driving the cluster-wide IPAM (type whereabouts) through the skel, as a runtime would."""

from __future__ import annotations

import json
from typing import Any

from multihome.cni import skel
from multihome.ipam import whereabouts
from multihome.store.objects import IPPOOL
from multihome.store.pools import PoolStore


def conf(version: str = "1.0.0", name: str = "wbnet", **ipam: Any) -> dict[str, Any]:
    """A NAD config as whereabouts users write it (`ipam` keys passed through as given)."""
    return {"cniVersion": version, "name": name, "type": "bridge",
            "ipam": {"type": "whereabouts", **ipam}}


def run(store: PoolStore | None, command: str, config: dict[str, Any], cid: str = "c1",
        ifname: str = "net1", pod: tuple[str, str] | None = ("default", "p1"),
        ) -> tuple[int, Any]:
    """One CNI call with the pools in `store` (None: the plugin's own default)."""
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/var/run/netns/x",
           "CNI_IFNAME": ifname, "CNI_PATH": "/usr/lib/cni"}
    if pod:
        env["CNI_ARGS"] = (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod[0]};"
                           f"K8S_POD_NAME={pod[1]}")
    stdin = json.dumps(config).encode()
    if store is None:
        rc, out = skel.dispatch(whereabouts, env, stdin)
    else:
        with whereabouts.bound(store):
            rc, out = skel.dispatch(whereabouts, env, stdin)
    return rc, json.loads(out) if out else None


def addresses(result: dict[str, Any]) -> list[str]:
    return [ip["address"] for ip in result["ips"]]


def pool_allocations(store: PoolStore, name: str) -> dict[str, dict[str, str]]:
    doc = store.read(IPPOOL, name)
    assert doc is not None, f"IPPool {name} does not exist"
    allocs = doc.spec.get("allocations")
    assert isinstance(allocs, dict)
    return allocs
