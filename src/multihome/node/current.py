"""The current state of a node (or of a network namespace playing one), in nmstate's schema.

Only what `node apply` can set again is reported, so that `show` output applied back is a
no-op: IPv6 link-local addresses (the kernel makes them) and link counters are left out,
and routes are split into `config` (static/boot routes someone added) and `running`.
"""

from __future__ import annotations

import socket
from typing import Any

from multihome.errors import MultihomeError
from multihome.net import addr, bridge_vlan, links, netns, node_links, route
from multihome.net.netns import Netlink

# proto of routes someone configured (RTPROT_BOOT as iproute2 adds, RTPROT_STATIC)
CONFIGURED_PROTOS = (3, 4)
_TYPES = {"bridge": "linux-bridge", "veth": "veth", "vlan": "vlan", "macvlan": "mac-vlan",
          "dummy": "dummy", "": "ethernet"}


def iface_type(link: links.Link) -> str:
    return _TYPES.get(link.kind, "unknown")


def _ip_section(ipr: Netlink, link: links.Link, version: int) -> dict[str, Any]:
    found = [a for a in addr.list_addresses(ipr, link.index, version)
             if not (version == 6 and a.ip.is_link_local)]
    entries = [{"ip": str(a.ip), "prefix-length": a.network.prefixlen}
               for a in sorted(found, key=lambda a: (int(a.ip), a.network.prefixlen))]
    return {"enabled": bool(entries), "address": entries}


def port_vlan(ipr: Netlink, index: int) -> dict[str, Any] | None:
    try:
        vids = bridge_vlan.port_vlans(ipr, index)
    except MultihomeError:
        return None
    native = [vid for vid, flags in vids if flags & bridge_vlan.BRIDGE_VLAN_INFO_PVID]
    tagged = sorted(vid for vid, flags in vids
                    if not flags & bridge_vlan.BRIDGE_VLAN_INFO_UNTAGGED)
    if native and not tagged:
        return {"mode": "access", "tag": native[0]}
    out: dict[str, Any] = {"mode": "trunk", "trunk-tags": [{"id": v} for v in tagged]}
    if native:
        out["enable-native"] = True
        out["tag"] = native[0]
    return out


def _bridge_section(ipr: Netlink, link: links.Link, all_links: list[links.Link]
                    ) -> dict[str, Any]:
    info = node_links.details(ipr, link.index)
    ports: list[dict[str, Any]] = []
    for port in sorted((p for p in all_links if p.master == link.index), key=lambda p: p.name):
        entry: dict[str, Any] = {"name": port.name}
        if info.vlan_filtering:
            vlan = port_vlan(ipr, port.index)
            if vlan is not None:
                entry["vlan"] = vlan
        ports.append(entry)
    return {"options": {"stp": {"enabled": info.stp}}, "port": ports}


def _interface(ipr: Netlink, link: links.Link, by_index: dict[int, links.Link],
               all_links: list[links.Link]) -> dict[str, Any]:
    itype = iface_type(link)
    iface: dict[str, Any] = {
        "name": link.name, "type": itype, "state": "up" if link.up else "down",
        "mtu": link.mtu, "mac-address": link.mac.upper(),
    }
    if itype == "linux-bridge":
        iface["bridge"] = _bridge_section(ipr, link, all_links)
    elif itype == "vlan":
        base = by_index.get(link.peer_index)
        iface["vlan"] = {"base-iface": base.name if base else "",
                         "id": node_links.details(ipr, link.index).vlan_id}
    elif itype == "mac-vlan":
        base = by_index.get(link.peer_index)
        iface["mac-vlan"] = {"base-iface": base.name if base else "",
                             "mode": node_links.details(ipr, link.index).macvlan_mode}
    elif itype == "veth":
        peer = by_index.get(link.peer_index)
        # a peer in another namespace has an index that means nothing here
        if peer is not None and peer.kind == "veth" and peer.peer_index == link.index:
            iface["veth"] = {"peer": peer.name}
    iface["ipv4"] = _ip_section(ipr, link, 4)
    iface["ipv6"] = _ip_section(ipr, link, 6)
    return iface


def route_dict(entry: route.RouteEntry, by_index: dict[int, links.Link]) -> dict[str, Any]:
    out: dict[str, Any] = {"destination": str(entry.dst)}
    link = by_index.get(entry.oif)
    out["next-hop-interface"] = link.name if link else ""
    if entry.gw is not None:
        out["next-hop-address"] = str(entry.gw)
    out["metric"] = entry.priority
    out["table-id"] = entry.table
    return out


def read_routes(ipr: Netlink, by_index: dict[int, links.Link]
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(config, running) routes of the main table, both families."""
    config: list[dict[str, Any]] = []
    running: list[dict[str, Any]] = []
    for version in (4, 6):
        for entry in route.list_routes(ipr, version):
            if version == 6 and entry.dst.network_address.is_link_local:
                continue
            item = route_dict(entry, by_index)
            running.append(item)
            if entry.proto in CONFIGURED_PROTOS:
                config.append(item)
    return config, running


def show(netns_path: str | None = None, *, names: set[str] | None = None) -> dict[str, Any]:
    """The current state; `names` limits the interfaces reported (routes are all reported)."""
    with netns.iproute_in(netns_path) as ipr:
        all_links = links.all_links(ipr)
        by_index = {link.index: link for link in all_links}
        ifaces = [_interface(ipr, link, by_index, all_links)
                  for link in sorted(all_links, key=lambda lk: lk.name)
                  if link.name != "lo" and (names is None or link.name in names)]
        config, running = read_routes(ipr, by_index)
    return {"interfaces": ifaces, "routes": {"config": config, "running": running}}


def hostname() -> str:
    return socket.gethostname()
