"""nftables JSON for one isolated interface: its own table, replaced in one batch.

Every protected interface (a pod's or VM's attachment to one network) gets a table
`inet mhpol_<hash(container)>_<hash(ifname)>` and nothing else of ours lives anywhere:
programming an interface is `add table; delete table; add table …` in one atomic batch
(the old rules vanish in the same transaction the new ones appear), removing it deletes
the table, and nobody else's rules are ever listed or touched.

Two placements, one rule body:

- **port** (bridge networks): the table lives where the bridge is (the node), on the
  bridge's IP path through br_netfilter, so a VM behind a bridge binding is covered as
  well as a pod. Base chain at prerouting (priority 0, after conntrack): frames entering
  from the host-side veth are the pod's egress; frames for the pod's MAC (a VM NIC keeps
  it) or its addresses are its ingress. A stateful bridge-family table would be the
  obvious place, but bridge conntrack (nf_conntrack_bridge) is missing from many kernels,
  this VM's included; br_netfilter's inet hooks have conntrack everywhere.
- **pod** (macvlan, ipvlan, host-device, sriov …): the table lives in the pod's network
  namespace, base chains at prerouting (`iifname` = ingress, also what an in-pod bridge
  forwards to a VM) and output (`oifname` = egress of the pod's own stack).

Direction chains accept established/related (replies), IPv6 neighbour discovery (ARP is
not IP and never reaches these chains), then what the policies allow, and count and drop
the rest: ICMP passes only a rule without ports, as in Kubernetes.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from multihome.attach.policy.model import EGRESS, INGRESS, IPBlock
from multihome.attach.policy.semantics import L4, Allow, IPAddress, Isolation

Obj = dict[str, Any]
FAMILY = "inet"
TABLE_PREFIX = "mhpol_"
PORT, POD = "port", "pod"
# part of every table's digest: a multihome whose rules look different rewrites them all
RENDERING = 2
ND_TYPES = ["nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit",
            "nd-neighbor-advert", "nd-redirect"]
_PROTO = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


def _h(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def container_prefix(container_id: str) -> str:
    """The start of every table name of one container (what its cleanup looks for)."""
    return f"{TABLE_PREFIX}{_h(container_id, 12)}_"


def table_name(container_id: str, ifname: str) -> str:
    return container_prefix(container_id) + _h(ifname, 8)


@dataclass(frozen=True)
class Target:
    """Where one interface's rules go and how its traffic is recognised."""

    placement: str  # PORT or POD
    table: str
    ifname: str  # PORT: the host-side veth; POD: the interface in the pod
    mac: str = ""  # PORT: the pod's (or VM NIC's) MAC on the network
    addresses: tuple[IPAddress, ...] = ()  # PORT: the pod's addresses on the network


def _match(left: Obj, right: Any, op: str = "==") -> Obj:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, fld: str) -> Obj:
    return {"payload": {"protocol": protocol, "field": fld}}


def _meta(key: str) -> Obj:
    return {"meta": {"key": key}}


def _set(items: Sequence[Any]) -> Any:
    return items[0] if len(items) == 1 else {"set": list(items)}


def _prefix(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Obj:
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _l4_matches(l4: L4) -> list[Obj]:
    out = [_match(_meta("l4proto"), _PROTO[l4.protocol])]
    if l4.first is not None:
        last = l4.last if l4.last is not None else l4.first
        out.append(_match(_payload("th", "dport"),
                          l4.first if last == l4.first else {"range": [l4.first, last]}))
    return out


def _peer_matches(allow: Allow, fld: str) -> list[list[Obj]]:
    """One list of matches per peer group (addresses of one family, or one block)."""
    if allow.any_peer:
        return [[]]
    groups: list[list[Obj]] = []
    for version, proto in ((4, "ip"), (6, "ip6")):
        addrs = sorted({str(a) for a in allow.addresses if a.version == version})
        if addrs:
            groups.append([_match(_payload(proto, fld), _set(addrs))])
    for block in allow.blocks:
        groups.append(_block_matches(block, fld))
    return groups


def _block_matches(block: IPBlock, fld: str) -> list[Obj]:
    proto = "ip" if block.cidr.version == 4 else "ip6"
    out = [_match(_payload(proto, fld), _prefix(block.cidr))]
    if block.except_:
        out.append(_match(_payload(proto, fld), _set([_prefix(e) for e in block.except_]),
                          "!="))
    return out


def _rule(table: str, chain: str, expr: list[Obj]) -> Obj:
    return {"add": {"rule": {"family": FAMILY, "table": table, "chain": chain, "expr": expr}}}


def direction_chain(table: str, iso: Isolation) -> list[Obj]:
    """The chain `ingress` or `egress` of one interface: what passes, then drop."""
    chain = "ingress" if iso.direction == INGRESS else "egress"
    fld = "saddr" if iso.direction == INGRESS else "daddr"
    cmds: list[Obj] = [
        {"add": {"chain": {"family": FAMILY, "table": table, "name": chain}}},
        _rule(table, chain, [_match({"ct": {"key": "state"}}, ["established", "related"],
                                    "in"), {"accept": None}]),
        _rule(table, chain, [_match(_payload("icmpv6", "type"), {"set": ND_TYPES}),
                             {"accept": None}]),
    ]
    for allow in iso.allows:
        port_groups: list[list[Obj]] = ([[]] if allow.ports is None
                                        else [_l4_matches(p) for p in allow.ports])
        for peers in _peer_matches(allow, fld):
            for ports in port_groups:
                cmds.append(_rule(table, chain, [*peers, *ports, {"accept": None}]))
    cmds.append(_rule(table, chain, [{"counter": None}, {"drop": None}]))
    return cmds


def program(target: Target, ingress: Isolation | None, egress: Isolation | None
            ) -> list[Obj]:
    """The batch that makes the table say exactly this (or removes it when nothing is
    isolated). The leading `add table` makes the `delete` valid when there was none."""
    cmds: list[Obj] = [{"add": {"table": {"family": FAMILY, "name": target.table}}},
                       {"delete": {"table": {"family": FAMILY, "name": target.table}}}]
    if ingress is None and egress is None:
        return cmds
    t = target.table
    cmds.append({"add": {"table": {"family": FAMILY, "name": t}}})
    for iso in (ingress, egress):
        if iso is not None:
            cmds += direction_chain(t, iso)
    if target.placement == PORT:
        cmds.append({"add": {"chain": {"family": FAMILY, "table": t, "name": "prerouting",
                                       "type": "filter", "hook": "prerouting", "prio": 0,
                                       "policy": "accept"}}})
        if egress is not None:
            cmds.append(_rule(t, "prerouting", [_match(_meta("iifname"), target.ifname),
                                                {"jump": {"target": "egress"}}]))
        if ingress is not None:
            not_own = _match(_meta("iifname"), target.ifname, "!=")
            if target.mac:
                cmds.append(_rule(t, "prerouting", [
                    not_own, _match(_payload("ether", "daddr"), target.mac.lower()),
                    {"jump": {"target": "ingress"}}]))
            for version, proto in ((4, "ip"), (6, "ip6")):
                addrs = sorted({str(a) for a in target.addresses if a.version == version})
                if addrs:
                    cmds.append(_rule(t, "prerouting", [
                        not_own, _match(_payload(proto, "daddr"), _set(addrs)),
                        {"jump": {"target": "ingress"}}]))
        return cmds
    # ingress at prerouting, not input: what arrives on the interface is filtered whether
    # the pod's stack takes it or an in-pod bridge (a VM's binding) forwards it on
    for hook, key, iso, chain in (("prerouting", "iifname", ingress, "ingress"),
                                  ("output", "oifname", egress, "egress")):
        if iso is None:
            continue
        cmds.append({"add": {"chain": {"family": FAMILY, "table": t, "name": hook,
                                       "type": "filter", "hook": hook, "prio": 0,
                                       "policy": "accept"}}})
        cmds.append(_rule(t, hook, [_match(_meta(key), target.ifname),
                                    {"jump": {"target": chain}}]))
    return cmds


def remove(table: str) -> list[Obj]:
    return [{"add": {"table": {"family": FAMILY, "name": table}}},
            {"delete": {"table": {"family": FAMILY, "name": table}}}]


def direction_of(chain: str) -> str:
    return INGRESS if chain == "ingress" else EGRESS
