"""Routes: add, list, check presence (CNI results' `routes`)."""

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
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255  # the kernel's own: addresses, broadcasts


@dataclass(frozen=True)
class RouteEntry:
    dst: IPNetwork
    gw: IPAddress | None
    oif: int
    table: int
    priority: int
    proto: int = 0  # RTPROT_*: 2 kernel (from an address), 3 boot, 4 static


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def add_route(ipr: IPRoute, dst: IPNetwork, *, gw: IPAddress | None = None, oif: int = 0,
              mtu: int = 0, advmss: int = 0, priority: int = 0, table: int | None = None,
              scope: int | None = None) -> None:
    """Add a route; an identical one already present is fine."""
    # proto boot (3), as `ip route add` and the reference plugins set it (pyroute2: static)
    kwargs: dict[str, Any] = {"dst": str(dst), "family": _family(dst.version), "proto": 3}
    if gw is not None:
        kwargs["gateway"] = str(gw)
    if oif:
        kwargs["oif"] = oif
    if priority:
        kwargs["priority"] = priority
    if table is not None:
        kwargs["table"] = table
    if scope is not None:
        kwargs["scope"] = scope
    metrics: dict[str, int] = {}
    if mtu:
        metrics["RTAX_MTU"] = mtu
    if advmss:
        metrics["RTAX_ADVMSS"] = advmss
    if metrics:
        kwargs["metrics"] = metrics
    try:
        ipr.route("add", **kwargs)
    except NetlinkError as e:
        if e.code == errno.EEXIST:
            return
        raise CNIError(f"cannot add route to {dst}" + (f" via {gw}" if gw else ""),
                       f"{e.args[1] if len(e.args) > 1 else e}") from e


def list_routes(ipr: IPRoute, version: int, table: int | None = RT_TABLE_MAIN
                ) -> list[RouteEntry]:
    """Unicast routes of one table, or of every table but the local one (`table` None)."""
    out: list[RouteEntry] = []
    query: dict[str, Any] = {"family": _family(version)}
    if table is not None:
        query["table"] = table
    for msg in ipr.get_routes(**query):
        if msg["type"] != 1:  # unicast only: skip local/broadcast/multicast entries
            continue
        if table is None and (msg.get_attr("RTA_TABLE") or msg["table"]) == RT_TABLE_LOCAL:
            continue
        dst = msg.get_attr("RTA_DST")
        net = ipaddress.ip_network(f"{dst or ('0.0.0.0' if version == 4 else '::')}"
                                   f"/{msg['dst_len']}", strict=False)
        gw = msg.get_attr("RTA_GATEWAY")
        out.append(RouteEntry(net, ipaddress.ip_address(gw) if gw else None,
                              msg.get_attr("RTA_OIF") or 0,
                              msg.get_attr("RTA_TABLE") or msg["table"],
                              msg.get_attr("RTA_PRIORITY") or 0, msg["proto"]))
    return out


def has_route(ipr: IPRoute, dst: IPNetwork, gw: IPAddress | None) -> bool:
    return any(r.dst == dst and (gw is None or r.gw == gw) for r in list_routes(ipr, dst.version))


def delete_route(ipr: IPRoute, route: RouteEntry) -> None:
    """Remove exactly this route; one already gone is fine."""
    kwargs: dict[str, Any] = {"dst": str(route.dst), "family": _family(route.dst.version),
                              "table": route.table, "priority": route.priority}
    if route.gw is not None:
        kwargs["gateway"] = str(route.gw)
    if route.oif:
        kwargs["oif"] = route.oif
    try:
        ipr.route("del", **kwargs)
    except NetlinkError as e:
        if e.code in (errno.ESRCH, errno.ENOENT):
            return
        raise CNIError(f"cannot remove route to {route.dst}",
                       f"{e.args[1] if len(e.args) > 1 else e}") from e
