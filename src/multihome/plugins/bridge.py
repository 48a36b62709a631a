"""The bridge plugin (also registered as `cnv-bridge`): a veth pair from the container
to a Linux bridge, with the reference plugin's keys and behaviour.

ADD undoes everything it did when a later step fails (IPAM release, veth, nft rules);
DEL is idempotent (netns gone, called twice, nothing cached); GC removes the spoof-check
and masquerade rules of attachments the runtime no longer knows.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

from multihome.cni import version as ver
from multihome.cni.errors import CNIError, InvalidConfig, NotAvailable
from multihome.cni.result import DNS, Interface, Result, Route
from multihome.cni.skel import Call
from multihome.net import addr as net_addr
from multihome.net import bridge_vlan, links, netns, sysctl
from multihome.net.netns import Netlink, netlink
from multihome.plugins import bridge_nft, ipam_helper
from multihome.plugins.bridge_config import BridgeConf, parse

SUPPORTED_VERSIONS = ver.ALL_VERSIONS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

# How long to wait for the new port to leave "not up": about the reference plugin's
# bound (2.5 s), polled finely at first, since the port is usually up within a few ms
# and a first wait of 50 ms cost ADDs that just missed it a tenfold latency.
_PORT_UP_WAITS_MS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 250, 500, 1000, 1000)


def _ipam(call: Call, conf: BridgeConf, command: str) -> Result | None:
    return ipam_helper.run(call, conf.ipam_type, command)


# -- ADD --------------------------------------------------------------------
def _gateways(result: Result, conf: BridgeConf) -> dict[int, list[IPInterface]]:
    """Fill in gateways and the default route like the reference; return bridge addresses."""
    bridge_addrs: dict[int, list[IPInterface]] = {4: [], 6: []}
    has_default = {4: False, 6: False}
    for ip in result.ips:
        ip.interface = 2
        if ip.gateway is None and conf.is_gateway:
            ip.gateway = ip.address.network.network_address + 1
        fam = ip.family
        if conf.is_default_gateway and not has_default[fam]:
            default = ipaddress.ip_network("0.0.0.0/0" if fam == 4 else "::/0")
            if not any(r.gw is not None and r.dst == default for r in result.routes):
                result.routes.append(Route(dst=default, gw=ip.gateway))
            has_default[fam] = True
        if conf.is_gateway and ip.gateway is not None:
            bridge_addrs[fam].append(ipaddress.ip_interface(
                f"{ip.gateway}/{ip.address.network.prefixlen}"))
    return bridge_addrs


def _ensure_bridge_addr(ipr: Netlink, br: links.Link, want: IPInterface, force: bool) -> None:
    """Put the gateway address on the bridge; another one in the same subnet is an error
    unless forceAddress (IPv4: any other address; IPv6: overlapping subnets only)."""
    for have in net_addr.list_addresses(ipr, br.index, want.version):
        if have == want:
            return
        if have.version == 6 and have.ip.is_link_local:
            continue
        if want.version == 4 or net_addr.overlapping(have, want):
            if not force:
                raise CNIError(f"bridge {br.name!r} already has an IP address {have} "
                               f"different from {want}; set forceAddress to replace it")
            net_addr.delete_address(ipr, br.index, have, ifname=br.name)
    net_addr.add_address(ipr, br.index, want, ifname=br.name)
    # Pin the bridge MAC: otherwise it follows the lowest port MAC as ports come and go.
    links.set_mac(ipr, br.index, br.mac)


def _wait_port_up(ipr: Netlink, index: int, name: str) -> links.Link:
    link: links.Link | None = None
    for ms in _PORT_UP_WAITS_MS:
        time.sleep(ms / 1000)
        link = links.by_index(ipr, index)
        if link is None:
            raise CNIError(f"host veth {name} vanished during setup")
        if link.operstate == "UP":
            return link
    raise CNIError(f"bridge port {name} is in state {link.operstate if link else '?'}, not up")


def _setup_port(ipr: Netlink, conf: BridgeConf, br: links.Link, host: links.Link) -> None:
    vlans = conf.vlan_filtering or conf.vlan or conf.vlan_trunk
    if not (vlans or conf.hairpin or conf.port_isolation):
        # A new port starts with hairpin and isolation off: one round trip does it all.
        links.set_master(ipr, host.index, br.index, up=True)
        return
    links.set_master(ipr, host.index, br.index)
    # Only what differs from a new port's defaults is set (hairpin and isolation are off).
    links.set_port_flags(ipr, host.index, hairpin=True if conf.hairpin else None,
                         isolated=True if conf.port_isolation else None)
    if conf.vlan_filtering and not conf.preserve_default_vlan:
        bridge_vlan.remove_all(ipr, host.index)
    if conf.vlan:
        bridge_vlan.set_access(ipr, host.index, conf.vlan)
    if conf.vlan_trunk:
        bridge_vlan.set_trunk(ipr, host.index, list(conf.vlan_trunk))
    links.set_up(ipr, host.index)


def add(call: Call) -> Result:
    conf = parse(call)
    cmd = call.cmd
    with netns.opened(cmd.netns) as nsfd, netlink() as ipr:
        br = links.ensure_bridge(ipr, conf.bridge, mtu=conf.mtu, promisc=conf.promisc,
                                 vlan_filtering=conf.vlan_filtering)
        # We want to own this bridge's routes (the reference does the same).
        sysctl.write_best_effort(sysctl.iface_key("ipv6", conf.bridge, "accept_ra"), "0")
        with netns.iproute_in(nsfd) as cipr, ipam_helper.rollback() as undo:
            return _add_with_undo(call, conf, ipr, cipr, br, nsfd, undo)


def _add_with_undo(call: Call, conf: BridgeConf, ipr: Netlink, cipr: Netlink, br: links.Link,
                   nsfd: int, undo: ipam_helper.UndoSteps) -> Result:
    cmd = call.cmd
    # A name clash inside the container surfaces here as EEXIST: no lookup beforehand.
    host, host_name = links.create_veth(ipr, cmd.ifname, nsfd, mtu=conf.mtu, mac=conf.mac,
                                        container_id=cmd.container_id)
    undo.append(lambda: links.delete_by_name(ipr, host_name))
    _setup_port(ipr, conf, br, host)

    cont = links.by_name(cipr, cmd.ifname)
    if cont is None:
        raise CNIError(f"container interface {cmd.ifname} vanished during setup")
    if not conf.ipam_type and not conf.disable_container_interface:
        links.set_up(cipr, cont.index)

    uid = bridge_nft.spoof_id(cmd.container_id, cmd.ifname)
    if conf.macspoofchk:
        bridge_nft.spoof_setup(host_name, cont.mac, uid)
        undo.append(lambda: bridge_nft.spoof_teardown(uid))

    result = Result(cni_version=call.conf.cni_version, interfaces=[
        Interface(name=br.name, mac=br.mac),
        Interface(name=host_name, mac=host.mac),
        Interface(name=cmd.ifname, mac=cont.mac, sandbox=cmd.netns),
    ])
    if conf.ipam_type:
        ipam_result = ipam_helper.add(call, conf.ipam_type, undo)
        result.ips, result.routes, result.dns = ipam_result.ips, ipam_result.routes, \
            ipam_result.dns
        bridge_addrs = _gateways(result, conf)
        ipam_helper.configure_container(cipr, nsfd, cont, result, enable_dad=conf.enable_dad)
        for family, wanted in bridge_addrs.items():
            for want in wanted:
                _ensure_bridge_addr(ipr, br, want, conf.force_address)
            if wanted:
                sysctl.write("net.ipv4.ip_forward" if family == 4
                             else "net.ipv6.conf.all.forwarding", "1")
        if conf.ip_masq:
            comment = bridge_nft.masq_comment(conf.network, cmd.container_id, cmd.ifname)
            bridge_nft.masq_setup([ip.address for ip in result.ips], comment)
            undo.append(lambda: bridge_nft.masq_teardown(comment))

    if conf.disable_container_interface:
        fresh = links.by_index(ipr, host.index) or host
    else:
        fresh = _wait_port_up(ipr, host.index, host_name)
    result.interfaces[1].mac = fresh.mac
    br_now = links.by_name(ipr, conf.bridge)
    if br_now is not None:
        result.interfaces[0].mac = br_now.mac
    if call.conf.dns is not None:
        dns = DNS.from_dict(call.conf.dns)
        if not dns.empty():
            result.dns = dns
    return result


# -- DEL --------------------------------------------------------------------
def delete(call: Call) -> None:
    conf = parse(call)
    cmd = call.cmd
    uid = bridge_nft.spoof_id(cmd.container_id, cmd.ifname)
    container_link_deleted = False
    if conf.ipam_type:
        # before the link goes, as in every other plugin here: a DHCP lease's RELEASE
        # is sent from the container's interface
        _ipam(call, conf, "DEL")
    if cmd.netns:
        try:
            with netns.iproute_in(cmd.netns) as cipr:
                container_link_deleted = links.delete_by_name(cipr, cmd.ifname)
        except netns.NetnsGone:
            pass  # the kernel removed the veth pair with the namespace
    if conf.macspoofchk:
        veth = bridge_nft.spoof_teardown(uid)
        if veth and not container_link_deleted:
            # The netns path may be gone while the namespace lives on (held by a process):
            # then the host end still exists and is only reachable by its name.
            with netlink() as ipr:
                links.delete_by_name(ipr, veth)
    if conf.ip_masq:
        bridge_nft.masq_teardown(bridge_nft.masq_comment(conf.network, cmd.container_id,
                                                         cmd.ifname))


# -- CHECK ------------------------------------------------------------------
def _find(result: Result, pred: Callable[[Interface], bool]) -> Interface | None:
    return next((i for i in result.interfaces if pred(i)), None)


def check(call: Call) -> None:
    conf = parse(call)
    cmd = call.cmd
    if conf.ipam_type:
        _ipam(call, conf, "CHECK")
    prev = call.conf.prev_result
    if prev is None:
        raise InvalidConfig("CHECK needs prevResult: the result of the ADD to check against")
    br_if = _find(prev, lambda i: i.name == conf.bridge)
    cont_if = _find(prev, lambda i: i.name == cmd.ifname and i.sandbox == cmd.netns)
    if br_if is None:
        raise CNIError(f"prevResult has no interface for bridge {conf.bridge}")
    if cont_if is None:
        raise CNIError(f"prevResult has no interface {cmd.ifname} in sandbox {cmd.netns}")
    with netlink() as ipr:
        br = links.by_name(ipr, conf.bridge)
        if br is None or br.kind != "bridge":
            raise CNIError(f"bridge {conf.bridge} was not found (or is not a bridge)")
        if br_if.mac and br_if.mac.lower() != br.mac:
            raise CNIError(f"bridge {conf.bridge} MAC {br.mac} does not match {br_if.mac}")
        if br.promisc != conf.promisc:
            raise CNIError(f"bridge {conf.bridge} promiscuous mode is {br.promisc}, "
                           f"config says {conf.promisc}")
        with netns.iproute_in(cmd.netns) as cipr:
            cont = links.by_name(cipr, cmd.ifname)
            if cont is None or cont.kind != "veth":
                raise CNIError(f"container interface {cmd.ifname} not found (or not a veth)")
            if cont_if.mac and cont_if.mac.lower() != cont.mac:
                raise CNIError(f"interface {cmd.ifname} MAC {cont.mac} does not match "
                               f"{cont_if.mac}")
            ipam_helper.check_container(cipr, cont, prev, cmd.container_id)
        host = links.by_index(ipr, cont.peer_index)
        if host is None or host.kind != "veth" or host.master != br.index:
            raise CNIError(f"the host end of {cmd.ifname} is not a port of bridge "
                           f"{conf.bridge}")


# -- STATUS / GC --------------------------------------------------------------
def status(call: Call) -> None:
    conf = parse(call)
    with netlink() as ipr:
        br = links.by_name(ipr, conf.bridge)
    if br is not None and br.kind != "bridge":
        raise NotAvailable(f"{conf.bridge!r} exists but is not a bridge: ADD would fail")
    if conf.ipam_type:
        _ipam(call, conf, "STATUS")


def _valid_attachments(raw: dict[str, Any]) -> set[tuple[str, str]]:
    items = raw.get("cni.dev/valid-attachments")
    if items is None:
        items = raw.get("cni.dev/attachments")
    if items is None:
        return set()
    if not isinstance(items, list):
        raise InvalidConfig("cni.dev/valid-attachments must be a list")
    out: set[tuple[str, str]] = set()
    for item in items:
        if not isinstance(item, dict):
            raise InvalidConfig("cni.dev/valid-attachments entries must be objects")
        out.add((str(item.get("containerID", "")), str(item.get("ifname", ""))))
    return out


def gc(call: Call) -> None:
    conf = parse(call)
    valid = _valid_attachments(call.conf.raw)
    valid_uids = {bridge_nft.spoof_id(cid, ifn) for cid, ifn in valid}
    with netlink() as ipr:
        br = links.by_name(ipr, conf.bridge)

        def stale(uid: str, veth: str) -> bool:
            if uid in valid_uids:
                return False
            port = links.by_name(ipr, veth) if veth else None
            # A rule for a vanished veth is garbage whatever network made it; a live
            # port belongs to this network only if it is on this network's bridge.
            return port is None or (br is not None and port.master == br.index)

        bridge_nft.spoof_gc(stale)
    bridge_nft.masq_gc(conf.network, {bridge_nft.masq_comment(conf.network, cid, ifn)
                                      for cid, ifn in valid})
    if conf.ipam_type:
        _ipam(call, conf, "GC")
