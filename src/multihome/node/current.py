"""The current state of a node (or of a network namespace playing one), in nmstate's schema.

Only what `node apply` can set again is reported, so that `show` output applied back is a
no-op: IPv6 link-local addresses (the kernel makes them) and link counters are left out,
and routes are split into `config` (static/boot routes someone added) and `running`.
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

from multihome.errors import MultihomeError
from multihome.net import (
    addr,
    bond,
    bridge_vlan,
    features,
    links,
    netns,
    node_links,
    route,
    rule,
    sublinks,
)
from multihome.net.netns import Netlink
from multihome.node import dns
from multihome.node import state as models

# proto of routes someone configured (RTPROT_BOOT as iproute2 adds, RTPROT_STATIC)
CONFIGURED_PROTOS = (3, 4)
_TYPES = {"bridge": "linux-bridge", "veth": "veth", "vlan": "vlan", "macvlan": "mac-vlan",
          "dummy": "dummy", "vxlan": "vxlan", "bond": "bond", "vrf": "vrf", "ipvlan": "ipvlan",
          "": "ethernet"}


def iface_type(link: links.Link) -> str:
    return _TYPES.get(link.kind, "unknown")


def _ip_config(ipr: Netlink, link: links.Link, version: int) -> models.IpConfig:
    found = [a for a in addr.list_addresses(ipr, link.index, version)
             if not (version == 6 and a.ip.is_link_local)]
    found.sort(key=lambda a: (int(a.ip), a.network.prefixlen))
    return models.IpConfig(enabled=bool(found), addresses=tuple(found))


def port_vlan(ipr: Netlink, index: int) -> models.PortVlan | None:
    try:
        vids = bridge_vlan.port_vlans(ipr, index)
    except MultihomeError:
        return None
    native = [vid for vid, flags in vids if flags & bridge_vlan.BRIDGE_VLAN_INFO_PVID]
    tagged = sorted(vid for vid, flags in vids
                    if not flags & bridge_vlan.BRIDGE_VLAN_INFO_UNTAGGED)
    if native and not tagged:
        return models.PortVlan(mode="access", tag=native[0])
    return models.PortVlan(mode="trunk", tag=native[0] if native else None, trunk=tuple(tagged))


def _bridge_ports(ipr: Netlink, link: links.Link, all_links: list[links.Link],
                  vlan_filtering: bool) -> tuple[models.Port, ...]:
    return tuple(models.Port(name=port.name,
                             vlan=port_vlan(ipr, port.index) if vlan_filtering else None)
                 for port in sorted((p for p in all_links if p.master == link.index),
                                    key=lambda p: p.name))


def _port_names(link: links.Link, all_links: list[links.Link]) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in all_links if p.master == link.index))


def _interface(ipr: Netlink, link: links.Link, by_index: dict[int, links.Link],
               all_links: list[links.Link]) -> models.Interface:
    itype = iface_type(link)
    cls = models.TYPES.get(itype, models.Interface)
    extra: dict[str, Any] = {}
    if cls is models.LinuxBridge:
        info = node_links.details(ipr, link.index)
        extra = {"stp": info.stp,
                 "ports": _bridge_ports(ipr, link, all_links, info.vlan_filtering)}
    elif cls is models.Vlan:
        base = links.local_peer(link, by_index)
        extra = {"base_iface": base.name if base else "",
                 "vlan_id": node_links.details(ipr, link.index).vlan_id}
    elif cls is models.MacVlan:
        base = links.local_peer(link, by_index)
        extra = {"base_iface": base.name if base else "",
                 "mode": sublinks.macvlan_mode(link),
                 "promiscuous": sublinks.macvlan_promiscuous(link)}
    elif cls is models.IpVlan:
        base = links.local_peer(link, by_index)
        extra = {"base_iface": base.name if base else "", "mode": sublinks.ipvlan_mode(link)}
    elif cls is models.Vxlan:
        vx = node_links.Vxlan.from_data(link.data)
        base = by_index.get(vx.base) if vx.base else None
        extra = {"base_iface": base.name if base else None, "vxlan_id": vx.vni,
                 "remote": vx.remote or None, "local": vx.local or None,
                 "destination_port": vx.port}
    elif cls is models.Bond:
        mode, options = bond.read(link.data, {lk.index: lk.name for lk in all_links})
        extra = {"mode": mode, "options": options, "ports": _port_names(link, all_links)}
    elif cls is models.Vrf:
        extra = {"table_id": int(link.data.get("IFLA_VRF_TABLE") or 0),
                 "ports": _port_names(link, all_links)}
    elif cls is models.Veth:
        # a peer in another namespace is not shown (as nmstate): its index means nothing
        # here, even when a local link happens to have it
        peer = links.local_peer(link, by_index)
        if peer is not None:
            extra = {"peer": peer.name}
    return cls(name=link.name, type=itype, state="up" if link.up else "down", mtu=link.mtu,
               mac=link.mac.upper(), ipv4=_ip_config(ipr, link, 4),
               ipv6=_ip_config(ipr, link, 6), **extra)


def read_link(ipr: Netlink, name: str) -> models.Interface | None:
    """One interface's current state (None: no such link)."""
    link = links.by_name(ipr, name)
    if link is None:
        return None
    all_links = links.all_links(ipr)
    return _interface(ipr, link, {lk.index: lk for lk in all_links}, all_links)


def route_model(entry: route.RouteEntry, by_index: dict[int, links.Link]) -> models.Route:
    link = by_index.get(entry.oif)
    return models.Route(destination=entry.dst, next_hop_interface=link.name if link else "",
                        next_hop_address=entry.gw, metric=entry.priority, table_id=entry.table)


def read_routes(ipr: Netlink, by_index: dict[int, links.Link]
                ) -> tuple[list[models.Route], list[models.Route]]:
    """(config, running) routes of every table but the kernel's local one, both
    families."""
    config: list[models.Route] = []
    running: list[models.Route] = []
    for version in (4, 6):
        for entry in route.list_routes(ipr, version, None):
            if version == 6 and entry.dst.network_address.is_link_local:
                continue
            item = route_model(entry, by_index)
            running.append(item)
            if entry.proto in CONFIGURED_PROTOS:
                config.append(item)
    return config, running


def rule_model(entry: rule.RuleEntry) -> models.RouteRule:
    return models.RouteRule(
        family=f"ipv{entry.version}", ip_from=entry.src, ip_to=entry.dst,
        priority=entry.priority, route_table=entry.table or None,
        fwmark=entry.fwmark or None, fwmask=entry.fwmask or None, iif=entry.iif or None,
        action=entry.action or None)


def read_rules(ipr: Netlink) -> list[models.RouteRule]:
    """The rules someone added (not the kernel's own), both families."""
    return [rule_model(e) for v in (4, 6) for e in rule.list_rules(ipr, v)]


def read(netns_path: str | None = None, *, names: set[str] | None = None) -> models.NodeState:
    """The current state; `names` limits the interfaces reported (routes are all reported)."""
    with netns.iproute_in(netns_path) as ipr:
        all_links = links.all_links(ipr)
        by_index = {link.index: link for link in all_links}
        ifaces = [_interface(ipr, link, by_index, all_links)
                  for link in sorted(all_links, key=lambda lk: lk.name)
                  if link.name != "lo" and (names is None or link.name in names)]
        config, running = read_routes(ipr, by_index)
        rules = read_rules(ipr)
    offloads = features.read(netns_path, [i.name for i in ifaces])
    ifaces = [dataclasses.replace(i, ethtool=offloads.get(i.name)) for i in ifaces]
    return models.NodeState(interfaces=tuple(ifaces), routes=tuple(config),
                            running=tuple(running), rules=tuple(rules), dns=dns.read())


def show(netns_path: str | None = None, *, names: set[str] | None = None) -> dict[str, Any]:
    """The current state in nmstate's schema (what `node show` prints)."""
    return read(netns_path, names=names).to_nmstate()


def hostname() -> str:
    return socket.gethostname()
