"""During a migration, only the source's node-bridge port may carry the VM's MACs.

The target launcher pod gets each bridge-bound NIC's MAC from CNI (the one macspoofchk
allows) before qemu runs there; anything its interfaces send meanwhile (IPv6 DAD and
MLD when netN comes up, a plugin's gratuitous ARP) would carry the VM's MAC and move
the node bridge's FDB entry to the target while the VM still runs on the source — the
frames then go to a VM that is not running yet (KubeVirt #17195). A bridge-family
prerouting rule on the node drops frames with the VM's source MAC that enter on any port
but the source's; the bridge learns in br_handle_frame_finish, after that hook, so
a dropped frame teaches it nothing. The switch-over removes the guard, then the target
announces the MACs itself (qemu `announce-self`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from multihome.cni.errors import CNIError
from multihome.net import links, netns, nft
from multihome.vm.errors import VMError

STEP = "migrate"
PRIORITY = -300  # before any other bridge filter


def table_name(namespace: str, vm: str) -> str:
    return "mh-migrate-" + hashlib.sha256(f"{namespace}/{vm}".encode()).hexdigest()[:10]


def host_port(pod_netns: str, ifname: str) -> str:
    """The node's end (a node-bridge port) of veth `ifname` in the pod."""
    with netns.iproute_in(pod_netns) as ipr:
        link = links.by_name(ipr, ifname)
    if link is None or link.kind != "veth" or not link.peer_index:
        raise VMError(STEP, f"{ifname} of the launcher pod is not a veth to the node")
    with netns.iproute_in(None) as ipr:
        peer = links.by_index(ipr, link.peer_index)
    if peer is None:
        raise VMError(STEP, f"the node end of {ifname} is gone")
    return peer.name


def rules(table: str, allowed: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """(MAC, the only port it may enter on) pairs as an nftables batch."""
    cmds: list[dict[str, Any]] = [
        {"add": {"table": {"family": "bridge", "name": table}}},
        {"add": {"chain": {"family": "bridge", "table": table, "name": "prerouting",
                           "type": "filter", "hook": "prerouting", "prio": PRIORITY,
                           "policy": "accept"}}},
    ]
    for mac, port in allowed:
        cmds.append({"add": {"rule": {"family": "bridge", "table": table,
                                      "chain": "prerouting", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ether",
                                                        "field": "saddr"}}, "right": mac}},
            {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": port}},
            {"counter": None},
            {"drop": None}]}}})
    return cmds


def install(table: str, allowed: list[tuple[str, str]]) -> None:
    remove(table)
    try:
        nft.run(rules(table, allowed), what="guard the VM's MACs during the migration")
    except CNIError as e:
        raise VMError(STEP, "cannot guard the VM's MACs on the node bridge", str(e)) from e


def dropped(table: str) -> int:
    """How many frames the guard has dropped so far."""
    try:
        objects = nft.list_objects("table", "bridge", table)
    except CNIError:
        return 0
    return sum(e["counter"].get("packets", 0) for r in nft.of_kind(objects, "rule")
               for e in r.get("expr", []) if isinstance(e, dict) and "counter" in e)


def remove(table: str) -> None:
    try:
        if nft.table_exists("bridge", table):
            nft.run([{"delete": {"table": {"family": "bridge", "name": table}}}],
                    what="remove the migration guard")
    except CNIError as e:
        raise VMError(STEP, "cannot remove the migration guard", str(e)) from e
