"""Policy-routing rules (`ip rule`): list, add, delete, in both families.

The kernel's own rules (local, main, default; protocol "kernel") are never listed, so
nothing a policy says can remove them by accident.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from multihome.cni.errors import CNIError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

RTPROT_KERNEL = 2
FR_ACT_TO_TBL = 1
# the actions besides "look up a table", as nmstate names them
ACTIONS = {"blackhole": 6, "unreachable": 7, "prohibit": 8}


@dataclass(frozen=True)
class RuleEntry:
    version: int
    priority: int
    table: int = 0  # 0 with an action other than a lookup
    src: IPNetwork | None = None
    dst: IPNetwork | None = None
    iif: str = ""
    fwmark: int = 0
    fwmask: int = 0
    action: str = ""  # "" looks up `table`; else one of ACTIONS
    proto: int = 0


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def _net(addr: Any, length: int, version: int) -> IPNetwork | None:
    if not addr and not length:
        return None
    zero = "0.0.0.0" if version == 4 else "::"
    return ipaddress.ip_network(f"{addr or zero}/{length}", strict=False)


def list_rules(ipr: IPRoute, version: int) -> list[RuleEntry]:
    out: list[RuleEntry] = []
    names = {v: k for k, v in ACTIONS.items()}
    for msg in ipr.get_rules(family=_family(version)):
        proto = int(msg.get_attr("FRA_PROTOCOL") or 0)
        if proto == RTPROT_KERNEL:
            continue
        action = int(msg["action"])
        if action != FR_ACT_TO_TBL and action not in names:
            continue  # goto/nop rules: not in nmstate's model, left alone
        out.append(RuleEntry(
            version=version, priority=int(msg.get_attr("FRA_PRIORITY") or 0),
            table=int(msg.get_attr("FRA_TABLE") or msg["table"] or 0)
            if action == FR_ACT_TO_TBL else 0,
            src=_net(msg.get_attr("FRA_SRC"), msg["src_len"], version),
            dst=_net(msg.get_attr("FRA_DST"), msg["dst_len"], version),
            iif=msg.get_attr("FRA_IIFNAME") or "", fwmark=int(msg.get_attr("FRA_FWMARK") or 0),
            fwmask=int(msg.get_attr("FRA_FWMASK") or 0), action=names.get(action, ""),
            proto=proto))
    return out


def free_priority(ipr: IPRoute, version: int) -> int:
    """The priority the kernel gives a rule added without one: just before the first
    rule after priority 0 (32765 on a node with only the kernel's rules)."""
    taken = [int(m.get_attr("FRA_PRIORITY") or 0) for m in ipr.get_rules(family=_family(version))]
    return max(min((p for p in taken if p > 0), default=32766) - 1, 1)


def _request(rule: RuleEntry) -> dict[str, Any]:
    spec: dict[str, Any] = {"family": _family(rule.version), "priority": rule.priority}
    if rule.action:
        spec["action"] = ACTIONS[rule.action]
    else:
        spec["table"] = rule.table
        spec["action"] = FR_ACT_TO_TBL
    for key, net in (("src", rule.src), ("dst", rule.dst)):
        if net is not None:
            spec[key] = str(net.network_address)
            spec[f"{key}_len"] = net.prefixlen
    if rule.iif:
        spec["iifname"] = rule.iif
    if rule.fwmark or rule.fwmask:
        spec["fwmark"] = rule.fwmark
    if rule.fwmask:
        spec["fwmask"] = rule.fwmask
    if rule.proto:
        spec["protocol"] = rule.proto
    return spec


def _describe(rule: RuleEntry) -> str:
    what = [f"priority {rule.priority}"]
    what += [f"{k} {v}" for k, v in (("from", rule.src), ("to", rule.dst), ("iif", rule.iif))
             if v]
    return " ".join(what)


def add_rule(ipr: IPRoute, rule: RuleEntry) -> None:
    """Add a rule; the same rule already there is fine."""
    try:
        ipr.rule("add", **_request(rule))
    except NetlinkError as e:
        if e.code == errno.EEXIST:
            return
        raise CNIError(f"cannot add rule {_describe(rule)}",
                       f"{e.args[1] if len(e.args) > 1 else e} (errno {e.code})") from e


def delete_rule(ipr: IPRoute, rule: RuleEntry) -> None:
    """Remove exactly this rule; one already gone is fine."""
    try:
        ipr.rule("del", **_request(rule))
    except NetlinkError as e:
        if e.code in (errno.ENOENT, errno.ESRCH):
            return
        raise CNIError(f"cannot remove rule {_describe(rule)}",
                       f"{e.args[1] if len(e.args) > 1 else e} (errno {e.code})") from e
