"""Change the kernel towards a desired state, touching only what the state names.

Order matters: absent routes and interfaces first, then links are created (bridges,
dummies and veths before the vlans and macvlans stacked on them), then link settings,
bridge ports, addresses, and routes last (they need the addresses' subnets).
Each change is recorded as one line for the report.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from multihome.net import addr, bridge_vlan, links, netns, node_links, route, sublinks
from multihome.net.netns import Netlink
from multihome.node import current, schema
from multihome.node.errors import NodeError
from multihome.node.verify import port_vlan_norm, route_matches

_STACKED = ("vlan", "mac-vlan")


class ApplyError(NodeError):
    """A change the kernel refused; the caller rolls back."""


def _link(ipr: Netlink, name: str) -> links.Link:
    link = links.by_name(ipr, name)
    if link is None:
        raise ApplyError(f"interface {name} does not exist")
    return link


def _create(ipr: Netlink, iface: dict[str, Any], done: list[str]) -> None:
    name, itype = iface["name"], iface.get("type")
    if itype == "linux-bridge":
        links.ensure_bridge(ipr, name)
        if iface.get("state") == "down":
            links.set_down(ipr, _link(ipr, name).index)
    elif itype == "dummy":
        node_links.create_dummy(ipr, name)
    elif itype == "veth":
        peer = (iface.get("veth") or {}).get("peer")
        if not peer:
            raise ApplyError(f"cannot create veth {name}: veth.peer is required")
        node_links.create_veth_pair(ipr, name, peer)
    elif itype == "vlan":
        sec = iface["vlan"]
        sublinks.create_vlan(ipr, name, _link(ipr, sec["base-iface"]).index, int(sec["id"]))
    elif itype == "mac-vlan":
        sec = iface["mac-vlan"]
        sublinks.create_macvlan(ipr, name, _link(ipr, sec["base-iface"]).index,
                                  sec.get("mode", "bridge"))
    elif itype is None:
        raise ApplyError(f"interface {name} does not exist; give its type to create it")
    else:
        raise ApplyError(f"interface {name} does not exist, and a {itype} interface cannot "
                         "be created")
    done.append(f"created {itype} {name}")


def _settings(ipr: Netlink, iface: dict[str, Any], done: list[str]) -> None:
    link = _link(ipr, iface["name"])
    name = link.name
    if "mtu" in iface and iface["mtu"] != link.mtu:
        links.set_mtu(ipr, link.index, iface["mtu"])
        done.append(f"{name}: mtu {link.mtu} -> {iface['mtu']}")
    mac = iface.get("mac-address")
    if mac and mac.lower() != link.mac.lower():
        links.set_mac(ipr, link.index, mac.lower())
        done.append(f"{name}: mac-address -> {mac.upper()}")
    state = iface.get("state", "up")
    if state == "up" and not link.up:
        links.set_up(ipr, link.index)
        done.append(f"{name}: up")
    elif state == "down" and link.up:
        links.set_down(ipr, link.index)
        done.append(f"{name}: down")


def _port_vlan(ipr: Netlink, port: links.Link, vlan: dict[str, Any]) -> None:
    bridge_vlan.remove_all(ipr, port.index)
    if vlan.get("mode", "access" if "tag" in vlan else "trunk") == "access":
        bridge_vlan.set_access(ipr, port.index, int(vlan["tag"]))
        return
    bridge_vlan.set_trunk(ipr, port.index, schema.trunk_ids(vlan))
    if vlan.get("enable-native"):
        bridge_vlan.set_access(ipr, port.index, int(vlan["tag"]))


def _bridge(ipr: Netlink, iface: dict[str, Any], done: list[str]) -> None:
    section = iface.get("bridge") or {}
    bridge = _link(ipr, iface["name"])
    stp = ((section.get("options") or {}).get("stp") or {}).get("enabled")
    if stp is not None and stp != node_links.details(ipr, bridge.index).stp:
        node_links.set_stp(ipr, bridge.index, stp)
        done.append(f"{bridge.name}: stp {'on' if stp else 'off'}")
    if "port" not in section:
        return
    wanted = {p["name"]: p for p in section["port"]}
    for port in links.ports_of(ipr, bridge.index):
        if port.name not in wanted:
            node_links.release_port(ipr, port.index)
            done.append(f"{bridge.name}: port {port.name} released")
    vlan_ports = [p for p in section["port"] if p.get("vlan")]
    if vlan_ports and not node_links.details(ipr, bridge.index).vlan_filtering:
        links.set_vlan_filtering(ipr, bridge, True)
        done.append(f"{bridge.name}: vlan filtering on")
    for pname, spec in wanted.items():
        port = _link(ipr, pname)
        if port.master != bridge.index:
            links.set_master(ipr, port.index, bridge.index)
            done.append(f"{bridge.name}: port {pname} attached")
        if spec.get("vlan"):
            have = current.port_vlan(ipr, port.index)
            if port_vlan_norm(have) != port_vlan_norm(spec["vlan"]):
                _port_vlan(ipr, port, spec["vlan"])
                done.append(f"{bridge.name}: port {pname} vlan {spec['vlan']}")


def _addresses(ipr: Netlink, iface: dict[str, Any], done: list[str]) -> None:
    link = _link(ipr, iface["name"])
    for family, version in (("ipv4", 4), ("ipv6", 6)):
        sec = iface.get(family)
        if not sec or ("address" not in sec and sec.get("enabled") is not False):
            continue
        wanted = set() if sec.get("enabled") is False else {
            ipaddress.ip_interface(f"{a['ip']}/{a['prefix-length']}") for a in sec["address"]}
        have = {a for a in addr.list_addresses(ipr, link.index, version)
                if not (version == 6 and a.ip.is_link_local)}
        for gone in sorted(have - wanted, key=str):
            addr.delete_address(ipr, link.index, gone, ifname=link.name)
            done.append(f"{link.name}: address {gone} removed")
        for new in sorted(wanted - have, key=str):
            addr.add_address(ipr, link.index, new, nodad=True, ifname=link.name)
            done.append(f"{link.name}: address {new} added")


def _entry(ipr: Netlink, item: dict[str, Any]) -> route.RouteEntry:
    link = _link(ipr, item["next-hop-interface"])
    gw = item.get("next-hop-address")
    return route.RouteEntry(ipaddress.ip_network(item["destination"], strict=False),
                            ipaddress.ip_address(gw) if gw else None, link.index,
                            int(item.get("table-id") or route.RT_TABLE_MAIN),
                            int(item.get("metric") or 0))


def _routes(ipr: Netlink, wanted: list[dict[str, Any]], absent: bool, done: list[str]) -> None:
    by_index = {lk.index: lk for lk in links.all_links(ipr)}
    for version in (4, 6):
        for entry in route.list_routes(ipr, version):
            if entry.proto not in current.CONFIGURED_PROTOS:
                continue
            item = current.route_dict(entry, by_index)
            if absent and any(route_matches(w, item) for w in wanted):
                route.delete_route(ipr, entry)
                done.append(f"route {item['destination']} via "
                            f"{item['next-hop-interface']} removed")
    if absent:
        return
    have = [current.route_dict(e, by_index) for v in (4, 6) for e in route.list_routes(ipr, v)
            if e.proto in current.CONFIGURED_PROTOS]
    for item in wanted:
        if any(route_matches(item, h) for h in have):
            continue
        entry = _entry(ipr, item)
        route.add_route(ipr, entry.dst, gw=entry.gw, oif=entry.oif, priority=entry.priority,
                        table=entry.table)
        done.append(f"route {entry.dst} via {item['next-hop-interface']} added")


def change(desired: dict[str, Any], netns_path: str | None) -> list[str]:
    """Apply a validated desired state; returns what was changed, one line per change."""
    done: list[str] = []
    ifaces = schema.interfaces(desired)
    routes = schema.route_config(desired)
    with netns.iproute_in(netns_path) as ipr:
        _routes(ipr, [r for r in routes if r.get("state") == "absent"], True, done)
        for iface in ifaces:
            if iface.get("state") != "absent":
                continue
            link = links.by_name(ipr, iface["name"])
            if link is None:
                continue
            if current.iface_type(link) in schema.VIRTUAL_TYPES:
                links.delete(ipr, link.index)
                done.append(f"{link.name} deleted")
            elif link.up:
                links.set_down(ipr, link.index)
                done.append(f"{link.name}: down")
        present = [i for i in ifaces if i.get("state") != "absent"]
        # stacked links need their base: create those last
        for iface in sorted(present, key=lambda i: i.get("type") in _STACKED):
            if links.by_name(ipr, iface["name"]) is None:
                _create(ipr, iface, done)
        for iface in present:
            _settings(ipr, iface, done)
        for iface in present:
            if iface.get("bridge") is not None:
                _bridge(ipr, iface, done)
        for iface in present:
            _addresses(ipr, iface, done)
        _routes(ipr, [r for r in routes if r.get("state") != "absent"], False, done)
    return done
