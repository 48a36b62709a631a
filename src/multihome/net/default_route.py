"""Moving a pod's default route to another interface (the `default-route` selection key)."""

from __future__ import annotations

import ipaddress
import socket

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from multihome.cni.errors import CNIError
from multihome.net import links
from multihome.net.netns import iproute_in
from multihome.net.route import list_routes

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _default(version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")


def move_default_route(netns: str, ifname: str, gateway: IPAddress) -> None:
    """Inside `netns`: drop every default route of the gateway's family, add one via `ifname`."""
    version = gateway.version
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    with iproute_in(netns) as ipr:
        link = links.by_name(ipr, ifname)
        if link is None:
            raise CNIError(f"cannot set the default route: no interface {ifname} in {netns}")
        for route in list_routes(ipr, version):
            if route.dst.prefixlen != 0:
                continue
            try:
                ipr.route("del", family=family, dst=str(route.dst), oif=route.oif,
                          table=route.table, priority=route.priority,
                          **({"gateway": str(route.gw)} if route.gw else {}))
            except NetlinkError as e:
                raise CNIError(f"cannot remove the default route via {route.gw} in {netns}",
                               str(e)) from e
        try:
            ipr.route("add", family=family, dst=str(_default(version)), gateway=str(gateway),
                      oif=link.index)
        except NetlinkError as e:
            raise CNIError(f"cannot add the default route via {gateway} dev {ifname} in {netns}",
                           str(e)) from e


def default_gateways(netns: str, version: int = 4) -> list[tuple[str, str]]:
    """(gateway, interface name) of each default route in `netns` (for checks and display)."""
    out: list[tuple[str, str]] = []
    with iproute_in(netns) as ipr:
        for route in list_routes(ipr, version):
            if route.dst.prefixlen == 0:
                link = links.by_index(ipr, route.oif)
                out.append((str(route.gw) if route.gw else "", link.name if link else ""))
    return out


def default_route_ifname(ipr: IPRoute) -> str | None:
    """The interface of the first IPv4 default route in `ipr`'s namespace (macvlan's master)."""
    for route in list_routes(ipr, 4):
        if route.dst.prefixlen == 0 and route.oif:
            link = links.by_index(ipr, route.oif)
            if link is not None:
                return link.name
    return None
