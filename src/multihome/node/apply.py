"""Change the kernel towards a desired state, touching only what the state names.

Order matters: absent routes and interfaces first, then links are created (bridges,
dummies and veths before the vlans and macvlans stacked on them), then link settings,
bridge ports, addresses, and routes last (they need the addresses' subnets).
Each change is recorded as one line for the report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

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
from multihome.node import current, dns
from multihome.node import state as models
from multihome.node.errors import NodeError


class ApplyError(NodeError):
    """A change the kernel refused; the caller rolls back."""


def _link(ipr: Netlink, name: str) -> links.Link:
    link = links.by_name(ipr, name)
    if link is None:
        raise ApplyError(f"interface {name} does not exist")
    return link


def _create_bridge(ipr: Netlink, iface: models.Interface) -> None:
    # the MAC in the same request: the bridge id and the link-local address the kernel
    # makes are derived from it (a re-created bridge gets the ones it had)
    links.ensure_bridge(ipr, iface.name, mtu=iface.mtu or 0,
                        mac=iface.mac.lower() if iface.mac else "")
    if iface.state == "down":
        links.set_down(ipr, _link(ipr, iface.name).index)


def _mac(iface: models.Interface) -> str:
    # given at creation: the IPv6 link-local address the kernel makes derives from it, so
    # a re-created link (a rollback) gets the one it had
    return iface.mac.lower() if iface.mac else ""


def _create_dummy(ipr: Netlink, iface: models.Interface) -> None:
    node_links.create_dummy(ipr, iface.name, mac=_mac(iface))


def _create_vxlan(ipr: Netlink, iface: models.Interface) -> None:
    assert isinstance(iface, models.Vxlan) and iface.vxlan_id is not None  # the schema's
    base = _link(ipr, iface.base_iface).index if iface.base_iface else 0
    node_links.create_vxlan(ipr, iface.name, node_links.Vxlan(
        vni=iface.vxlan_id, base=base, remote=iface.remote or "", local=iface.local or "",
        port=iface.destination_port or 0), mac=_mac(iface))


def _create_bond(ipr: Netlink, iface: models.Interface) -> None:
    assert isinstance(iface, models.Bond)
    if iface.mode is None:
        raise ApplyError(f"cannot create bond {iface.name}: link-aggregation.mode is "
                         "required for a new bond")
    bond.create(ipr, iface.name, iface.mode, mac=_mac(iface), mtu=iface.mtu or 0)


def _create_vrf(ipr: Netlink, iface: models.Interface) -> None:
    assert isinstance(iface, models.Vrf)
    if iface.table_id is None:
        raise ApplyError(f"cannot create vrf {iface.name}: vrf.route-table-id is required "
                         "for a new vrf")
    node_links.create_vrf(ipr, iface.name, iface.table_id, mac=_mac(iface))


def _create_veth(ipr: Netlink, iface: models.Interface) -> None:
    assert isinstance(iface, models.Veth)
    if not iface.peer:
        raise ApplyError(f"cannot create veth {iface.name}: veth.peer is required")
    node_links.create_veth_pair(ipr, iface.name, iface.peer)


def _create_vlan(ipr: Netlink, iface: models.Interface) -> None:
    assert isinstance(iface, models.Vlan)
    assert iface.base_iface is not None and iface.vlan_id is not None  # the schema's check
    sublinks.create_vlan(ipr, iface.name, _link(ipr, iface.base_iface).index, iface.vlan_id)


def _create_macvlan(ipr: Netlink, iface: models.Interface) -> None:
    assert isinstance(iface, models.MacVlan)
    assert iface.base_iface is not None  # the schema's check
    sublinks.create_macvlan(ipr, iface.name, _link(ipr, iface.base_iface).index,
                            iface.mode or "bridge", mac=_mac(iface),
                            nopromisc=iface.promiscuous is False)


def _create_ipvlan(ipr: Netlink, iface: models.Interface) -> None:
    assert isinstance(iface, models.IpVlan)
    assert iface.base_iface is not None  # the schema's check
    sublinks.create_ipvlan(ipr, iface.name, _link(ipr, iface.base_iface).index,
                           iface.mode or "l2")


# how each type multihome can create is created (models.VIRTUAL_TYPES)
_CREATE: dict[type[models.Interface], Callable[[Netlink, models.Interface], None]] = {
    models.LinuxBridge: _create_bridge, models.Dummy: _create_dummy,
    models.Veth: _create_veth, models.Vlan: _create_vlan, models.MacVlan: _create_macvlan,
    models.Vxlan: _create_vxlan, models.Bond: _create_bond, models.Vrf: _create_vrf,
    models.IpVlan: _create_ipvlan,
}


def _create(ipr: Netlink, iface: models.Interface, done: list[str]) -> None:
    create = _CREATE.get(type(iface))
    if create is None:
        if iface.type is None:
            raise ApplyError(f"interface {iface.name} does not exist; give its type to "
                             "create it")
        raise ApplyError(f"interface {iface.name} does not exist, and a {iface.type} "
                         "interface cannot be created")
    create(ipr, iface)
    done.append(f"created {iface.type} {iface.name}")


def _settings(ipr: Netlink, iface: models.Interface, done: list[str]) -> None:
    link = _link(ipr, iface.name)
    name = link.name
    if iface.mtu is not None and iface.mtu != link.mtu:
        links.set_mtu(ipr, link.index, iface.mtu)
        done.append(f"{name}: mtu {link.mtu} -> {iface.mtu}")
    if iface.mac and iface.mac.lower() != link.mac.lower():
        links.set_mac(ipr, link.index, iface.mac.lower())
        done.append(f"{name}: mac-address -> {iface.mac}")
    state = iface.state or "up"
    if state == "up" and not link.up:
        links.set_up(ipr, link.index)
        done.append(f"{name}: up")
    elif state == "down" and link.up:
        links.set_down(ipr, link.index)
        done.append(f"{name}: down")


def _port_vlan(ipr: Netlink, port: links.Link, vlan: models.PortVlan) -> None:
    bridge_vlan.remove_all(ipr, port.index)
    if vlan.mode == "access":
        assert vlan.tag is not None
        bridge_vlan.set_access(ipr, port.index, vlan.tag)
        return
    bridge_vlan.set_trunk(ipr, port.index, list(vlan.trunk))
    if vlan.tag is not None:
        bridge_vlan.set_access(ipr, port.index, vlan.tag)


def _release_unlisted(ipr: Netlink, iface: models.Interface, done: list[str]) -> None:
    """Take off a controller the ports its list leaves out. Done before link settings:
    a bond closes a port it lets go and gives it its own MAC back, which must not undo
    the state and MAC the policy gives that link."""
    names = iface.port_names()
    ctl = links.by_name(ipr, iface.name) if names is not None else None
    if ctl is None or names is None:
        return
    for port in links.ports_of(ipr, ctl.index):
        if port.name not in names:
            node_links.release_port(ipr, port.index)
            done.append(f"{ctl.name}: port {port.name} released")


def _ports(ipr: Netlink, iface: models.Interface, described: set[str],
           done: list[str]) -> None:
    """A controller's ports exactly as listed, in order (a bridge numbers its ports in
    the order they join). As nmstate, an up controller activates the ports it lists that
    the state does not describe itself (a described one follows its own `state`): a port
    left down leaves a bridge or bond without carrier."""
    names = iface.port_names()
    if names is None:
        return
    ctl = _link(ipr, iface.name)
    _release_unlisted(ipr, iface, done)
    for pname in names:
        port = _link(ipr, pname)
        if port.master != ctl.index:
            if isinstance(iface, models.Bond) and port.up:
                # the bonding driver takes a port that is down (it opens it itself)
                links.set_down(ipr, port.index)
            links.set_master(ipr, port.index, ctl.index)
            done.append(f"{ctl.name}: port {pname} attached")
            port = _link(ipr, pname)
        if iface.state != "down" and pname not in described and not port.up:
            links.set_up(ipr, port.index)
            done.append(f"{ctl.name}: port {pname} up")


def _bridge(ipr: Netlink, iface: models.LinuxBridge, described: set[str],
            done: list[str]) -> None:
    """STP, ports and their VLANs."""
    bridge = _link(ipr, iface.name)
    if iface.stp is not None and iface.stp != node_links.details(ipr, bridge.index).stp:
        node_links.set_stp(ipr, bridge.index, iface.stp)
        done.append(f"{bridge.name}: stp {'on' if iface.stp else 'off'}")
    _ports(ipr, iface, described, done)
    if not any(p.vlan for p in iface.ports or ()):
        return
    if not node_links.details(ipr, bridge.index).vlan_filtering:
        links.set_vlan_filtering(ipr, bridge, True)
        done.append(f"{bridge.name}: vlan filtering on")
    for spec in iface.ports or ():
        port = _link(ipr, spec.name)
        if spec.vlan is not None and current.port_vlan(ipr, port.index) != spec.vlan:
            _port_vlan(ipr, port, spec.vlan)
            done.append(f"{bridge.name}: port {spec.name} vlan {spec.vlan.to_nmstate()}")


def _bond(ipr: Netlink, iface: models.Bond, described: set[str], done: list[str]) -> None:
    """Mode, options and ports. The kernel changes the mode (and fail_over_mac) only of a
    bond that is down and has no ports: those take the ports off and put them back."""
    link = _link(ipr, iface.name)
    index_names = {lk.index: lk.name for lk in links.all_links(ipr)}
    mode, options = bond.read(link.data, index_names)
    wanted = {k: v for k, v in (iface.options or {}).items() if options.get(k) != v}
    new_mode = iface.mode or mode
    # set while the bond is down and has no ports: those the kernel wants so, and those
    # the new mode does not take but the old one does (a rollback to active-backup
    # brings lacp_rate back while the bond is still 802.3ad)
    early = {k: v for k, v in wanted.items() if k in bond.NO_PORTS_OPTIONS
             or (new_mode != mode and not bond.supported(k, new_mode)
                 and bond.supported(k, mode))}
    if new_mode != mode or early:
        ports = links.ports_of(ipr, link.index)
        for port in ports:
            node_links.release_port(ipr, port.index)
        if link.up:
            links.set_down(ipr, link.index)
        bond.set_options(ipr, link.index, early, {n: i for i, n in index_names.items()})
        if new_mode != mode:
            bond.set_mode(ipr, link.index, new_mode)
            done.append(f"{link.name}: mode {mode} -> {new_mode}")
        if iface.ports is None:  # the ports it had come back
            iface = dataclasses.replace(iface, ports=tuple(p.name for p in ports))
        if link.up:
            links.set_up(ipr, link.index)
    _ports(ipr, iface, described, done)
    late = {k: v for k, v in wanted.items() if k not in early}
    bond.set_options(ipr, link.index, late, {n: i for i, n in index_names.items()})
    done += [f"{link.name}: option {k} {options.get(k)} -> {v}" for k, v in wanted.items()]


def _vrf(ipr: Netlink, iface: models.Vrf, described: set[str], done: list[str]) -> None:
    link = _link(ipr, iface.name)
    table = int(link.data.get("IFLA_VRF_TABLE") or 0)
    if iface.table_id is not None and iface.table_id != table:
        raise ApplyError(f"cannot change the route table of vrf {link.name} from {table} to "
                         f"{iface.table_id}: the kernel fixes it when the vrf is created; "
                         "remove the vrf (state: absent) and create it again")
    _ports(ipr, iface, described, done)


def _existing(ipr: Netlink, iface: models.Interface) -> None:
    """An existing link is of the type the policy says, and the settings of a vxlan (its
    tunnel), a vlan, mac-vlan or ipvlan (base, id, mode), which the kernel fixes when it
    creates the link, are those it asks for: else a clear error before any change to it,
    instead of a half-applied one."""
    have = current.read_link(ipr, iface.name)
    if have is None:
        return
    if iface.type not in (None, "unknown", have.type):
        raise ApplyError(f"{iface.name} exists and is a {have.type}, not a {iface.type}: "
                         "remove it (state: absent) first, or name it without a type")
    if not isinstance(iface, models.Vxlan | models.MacVlan | models.IpVlan | models.Vlan):
        return
    diffs = iface.section_differences(have)
    if diffs:
        raise ApplyError(f"cannot change the {iface.type} settings of {iface.name} in place "
                         f"({'; '.join(diffs)}); remove it (state: absent) and create it "
                         "again")


def _exact_addresses(ipr: Netlink, link: links.Link, want: Sequence[addr.AddressDetail],
                     done: list[str]) -> None:
    """Make the link's addresses exactly `want`, in its order (a rollback). Link-local
    IPv6 addresses are the kernel's: it makes them again from the MAC."""
    def own(found: Sequence[addr.AddressDetail]) -> list[addr.AddressDetail]:
        return [d for d in found if not (d.address.version == 6 and d.address.ip.is_link_local)]

    for version in (4, 6):
        wanted = [d for d in own(want) if d.address.version == version]
        have = own(addr.details(ipr, link.index, version))
        if have == wanted:
            continue
        # the order matters too (which address is primary): remove all, add in order
        for gone in reversed(have):
            addr.delete_address(ipr, link.index, gone.address, ifname=link.name)
        for new in wanted:
            addr.add_exact(ipr, link.index, new, ifname=link.name)
        done.append(f"{link.name}: addresses restored to "
                    f"{[str(d.address) for d in wanted]}")


def _addresses(ipr: Netlink, iface: models.Interface, done: list[str],
               exact: Sequence[addr.AddressDetail] | None = None) -> None:
    link = _link(ipr, iface.name)
    if exact is not None:
        _exact_addresses(ipr, link, exact, done)
        return
    for ip, version in ((iface.ipv4, 4), (iface.ipv6, 6)):
        wanted = ip.wanted() if ip is not None else None
        if wanted is None:
            continue
        have = {a for a in addr.list_addresses(ipr, link.index, version)
                if not (version == 6 and a.ip.is_link_local)}
        for gone in sorted(have - wanted, key=str):
            addr.delete_address(ipr, link.index, gone, ifname=link.name)
            done.append(f"{link.name}: address {gone} removed")
        for new in sorted(wanted - have, key=str):
            addr.add_address(ipr, link.index, new, nodad=True, ifname=link.name)
            done.append(f"{link.name}: address {new} added")


def _entry(ipr: Netlink, item: models.Route) -> route.RouteEntry:
    assert item.destination is not None and item.next_hop_interface is not None
    link = _link(ipr, item.next_hop_interface)
    return route.RouteEntry(item.destination, item.next_hop_address, link.index,
                            item.table_id or route.RT_TABLE_MAIN, item.metric or 0)


def _routes(ipr: Netlink, wanted: list[models.Route], absent: bool, done: list[str]) -> None:
    by_index = {lk.index: lk for lk in links.all_links(ipr)}
    for version in (4, 6):
        for entry in route.list_routes(ipr, version, None):
            if entry.proto not in current.CONFIGURED_PROTOS:
                continue
            item = current.route_model(entry, by_index)
            if absent and any(w.matches(item) for w in wanted):
                route.delete_route(ipr, entry)
                done.append(f"route {item.destination} via "
                            f"{item.next_hop_interface} removed")
    if absent:
        return
    have = [current.route_model(e, by_index) for v in (4, 6)
            for e in route.list_routes(ipr, v, None)
            if e.proto in current.CONFIGURED_PROTOS]
    for item in wanted:
        if any(item.matches(h) for h in have):
            continue
        entry = _entry(ipr, item)
        route.add_route(ipr, entry.dst, gw=entry.gw, oif=entry.oif, priority=entry.priority,
                        table=entry.table)
        done.append(f"route {entry.dst} via {item.next_hop_interface} added")


def _rules(ipr: Netlink, wanted: Sequence[models.RouteRule], absent: bool,
           done: list[str]) -> None:
    """Remove the existing rules that absent ones match, or add those missing."""
    have = [(e, current.rule_model(e)) for v in (4, 6) for e in rule.list_rules(ipr, v)]
    if absent:
        for entry, item in have:
            if any(w.matches(item) for w in wanted):
                rule.delete_rule(ipr, entry)
                done.append(f"route rule {item.fields()} removed")
        return
    for item in wanted:
        if any(item.matches(h) for _, h in have):
            continue
        entry = rule.RuleEntry(
            version=item.version,
            priority=item.priority if item.priority is not None
            else rule.free_priority(ipr, item.version),
            table=0 if item.action else item.route_table or route.RT_TABLE_MAIN,
            src=item.ip_from, dst=item.ip_to, iif=item.iif or "", fwmark=item.fwmark or 0,
            fwmask=item.fwmask or 0, action=item.action or "")
        rule.add_rule(ipr, entry)
        done.append(f"route rule {current.rule_model(entry).fields()} added")


def change(desired: models.NodeState | Mapping[str, Any], netns_path: str | None, *,
           exact: Mapping[str, Sequence[addr.AddressDetail]] | None = None) -> list[str]:
    """Apply a validated desired state; returns what was changed, one line per change.

    `exact` (a rollback) gives interfaces' addresses as the kernel held them: those are
    restored with their broadcast, scope, flags and order instead of the state's list.
    """
    exact = exact or {}
    wanted = models.from_nmstate(desired)
    done: list[str] = []
    with netns.iproute_in(netns_path) as ipr:
        _routes(ipr, [r for r in wanted.routes if r.absent], True, done)
        _rules(ipr, [r for r in wanted.rules or () if r.absent], True, done)
        for iface in wanted.interfaces:
            if not iface.absent:
                continue
            link = links.by_name(ipr, iface.name)
            if link is None:
                continue
            if current.iface_type(link) in models.VIRTUAL_TYPES:
                links.delete(ipr, link.index)
                done.append(f"{link.name} deleted")
            elif link.up:
                links.set_down(ipr, link.index)
                done.append(f"{link.name}: down")
        present = [i for i in wanted.interfaces if not i.absent]
        # stacked links need their base: create those last
        for iface in sorted(present, key=lambda i: i.STACKED):
            if links.by_name(ipr, iface.name) is None:
                _create(ipr, iface, done)
            else:
                _existing(ipr, iface)
        for iface in present:
            _release_unlisted(ipr, iface, done)
        for iface in present:
            _settings(ipr, iface, done)
        described = {i.name for i in present}
        for iface in present:
            if isinstance(iface, models.LinuxBridge):
                _bridge(ipr, iface, described, done)
            elif isinstance(iface, models.Bond):
                _bond(ipr, iface, described, done)
            elif isinstance(iface, models.Vrf):
                _vrf(ipr, iface, described, done)
        # a bond opens the ports it takes and closes those it lets go (a mode change lets
        # all go): their own `state` again (a no-op for links nothing moved)
        for iface in present:
            _settings(ipr, iface, done)
        for iface in present:
            # after the ports: a bridge's or bond's features follow its ports'
            if iface.ethtool:
                done += [f"{iface.name}: ethtool feature {f} "
                         f"{'on' if iface.ethtool[f] else 'off'}"
                         for f in features.change(netns_path, iface.name,
                                                  dict(iface.ethtool))]
        for iface in present:
            _addresses(ipr, iface, done, exact.get(iface.name))
        _routes(ipr, [r for r in wanted.routes if not r.absent], False, done)
        _rules(ipr, [r for r in wanted.rules or () if not r.absent], False, done)
    if wanted.dns is not None:
        done += dns.change(wanted.dns)
    return done
