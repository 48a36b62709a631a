"""The shape macvlan, ipvlan and vlan share: a link on a master, born in the container.

The plugin module supplies a `parse` giving its config, which knows how to create and
verify its link; everything else (master lookup, MTU bound, IPAM or prevResult
addresses, undo, DEL, CHECK, STATUS, GC) is the same for the three and lives here, and
`entry_points(parse)` gives the module its five CNI functions.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from multihome.cni.errors import CNIError, InvalidConfig, NotAvailable
from multihome.cni.result import DNS, Interface, Result
from multihome.cni.skel import Call
from multihome.net import links, netns
from multihome.net.default_route import default_route_ifname
from multihome.net.netns import Netlink, netlink
from multihome.plugins import conf_keys, ipam_helper

# create(ipr, name, master_index, netns_fd or None when already in the container)
Creator = Callable[[Netlink, str, int, "int | None"], None]
# verify(container link) raises CNIError when the link does not match the config
Verifier = Callable[[links.Link], None]


@dataclass(frozen=True)
class StackedConf:
    plugin: str
    master: str  # "" until resolved: then the default-route interface
    mtu: int
    link_in_container: bool
    ipam_type: str
    default_master: bool  # macvlan/ipvlan fall back to the default-route interface


def parse(call: Call, plugin: str, *, default_master: bool) -> StackedConf:
    raw = call.conf.raw
    master = conf_keys.get_ifname(raw, "master", plugin)
    if not master and not default_master:
        raise InvalidConfig(f'{plugin}: the "master" key is required: name the host '
                            "interface to stack the link on")
    return StackedConf(plugin=plugin, master=master, mtu=conf_keys.get_mtu(raw, plugin),
                       link_in_container=conf_keys.get_bool(raw, "linkInContainer", plugin),
                       ipam_type=conf_keys.ipam_type(call), default_master=default_master)


def _master(ipr: Netlink, conf: StackedConf) -> links.Link:
    name = conf.master
    if not name:
        found = default_route_ifname(ipr)
        if found is None:
            raise InvalidConfig(f"{conf.plugin}: no \"master\" given and this namespace has no "
                                "IPv4 default route to take the interface from; set master")
        name = found
    link = links.by_name(ipr, name)
    if link is None:
        where = "container" if conf.link_in_container else "host"
        raise InvalidConfig(f"{conf.plugin}: master interface {name!r} does not exist in the "
                            f"{where} network namespace")
    if conf.mtu > link.mtu:
        raise InvalidConfig(f"invalid MTU {conf.mtu}: must be between 0 and the master "
                            f"{name} MTU ({link.mtu})")
    return link


def add(call: Call, conf: StackedConf, create: Creator) -> Result:
    cmd = call.cmd
    with netns.opened(cmd.netns) as nsfd, netns.iproute_in(nsfd) as cipr:
        if links.by_name(cipr, cmd.ifname) is not None:
            raise CNIError(f"container {cmd.container_id} already has an interface named "
                           f"{cmd.ifname}")
        host = nullcontext(cipr) if conf.link_in_container else netlink()
        with host as ipr, ipam_helper.rollback() as undo:
            master = _master(ipr, conf)
            create(ipr, cmd.ifname, master.index,
                   None if conf.link_in_container else nsfd)
            undo.append(lambda: links.delete_by_name(cipr, cmd.ifname))
            return _address(call, conf, cipr, nsfd, undo)


def _address(call: Call, conf: StackedConf, cipr: Netlink, nsfd: int,
             undo: ipam_helper.UndoSteps) -> Result:
    cmd = call.cmd
    prev = call.conf.prev_result
    if conf.ipam_type:
        ips = ipam_helper.add(call, conf.ipam_type, undo)
    elif prev is not None and prev.ips:
        ips = prev  # chained after a plugin that only allocated addresses
    else:
        ips = None
    result = Result(cni_version=call.conf.cni_version)
    link = links.by_name(cipr, cmd.ifname)
    if link is None:
        raise CNIError(f"container interface {cmd.ifname} vanished during setup")
    if ips is not None:
        ipam_helper.apply(ips, result, cipr, nsfd, link)
    else:
        links.set_up(cipr, link.index)
    result.interfaces = [Interface(name=cmd.ifname, mac=link.mac, sandbox=cmd.netns)]
    if call.conf.dns is not None:
        dns = DNS.from_dict(call.conf.dns)
        if not dns.empty():
            result.dns = dns
    return result


def delete(call: Call, conf: StackedConf) -> None:
    cmd = call.cmd
    ipam_helper.run_if_set(call, conf.ipam_type, "DEL")
    ipam_helper.delete_container_link(cmd.netns, cmd.ifname)


def check(call: Call, conf: StackedConf, verify: Verifier) -> None:
    cmd = call.cmd
    prev = ipam_helper.prev_for_check(call, conf.ipam_type)
    want = next((i for i in prev.interfaces
                 if i.name == cmd.ifname and i.sandbox == cmd.netns), None)
    if want is None:
        raise CNIError(f"prevResult has no interface {cmd.ifname} in sandbox {cmd.netns}")
    with netns.iproute_in(cmd.netns) as cipr:
        link = links.by_name(cipr, cmd.ifname)
        if link is None or link.kind != conf.plugin:
            raise CNIError(f"container interface {cmd.ifname} not found (or not a "
                           f"{conf.plugin} link)")
        if want.mac and want.mac.lower() != link.mac:
            raise CNIError(f"interface {cmd.ifname} MAC {link.mac} does not match {want.mac}")
        if conf.mtu and link.mtu != conf.mtu:
            raise CNIError(f"interface {cmd.ifname} MTU {link.mtu} does not match {conf.mtu}")
        verify(link)
        ipam_helper.check_container(cipr, link, prev, cmd.container_id)


def status(call: Call, conf: StackedConf) -> None:
    if not conf.link_in_container:
        with netlink() as ipr:
            try:
                _master(ipr, conf)
            except InvalidConfig as e:
                raise NotAvailable(f"ADD would fail: {e.msg}") from e
    ipam_helper.run_if_set(call, conf.ipam_type, "STATUS")


def gc(call: Call, conf: StackedConf) -> None:
    # The links die with their namespaces; only IPAM can hold stale state.
    ipam_helper.run_if_set(call, conf.ipam_type, "GC")


class Sublink(Protocol):
    """A plugin's parsed config: the shared keys, and how to make and check its link."""

    @property
    def base(self) -> StackedConf: ...

    def create(self, ipr: Netlink, name: str, lower: int, netns_fd: int | None) -> None: ...

    def verify(self, link: links.Link) -> None: ...


class EntryPoints(NamedTuple):
    add: Callable[[Call], Result]
    delete: Callable[[Call], None]
    check: Callable[[Call], None]
    status: Callable[[Call], None]
    gc: Callable[[Call], None]


def entry_points(parse_conf: Callable[[Call], Sublink]) -> EntryPoints:
    """The CNI functions of a stacked-link plugin, from its config parser."""

    def add_(call: Call) -> Result:
        conf = parse_conf(call)
        return add(call, conf.base, conf.create)

    def check_(call: Call) -> None:
        conf = parse_conf(call)
        check(call, conf.base, conf.verify)

    return EntryPoints(
        add=add_,
        delete=lambda call: delete(call, parse_conf(call).base),
        check=check_,
        status=lambda call: status(call, parse_conf(call).base),
        gc=lambda call: gc(call, parse_conf(call).base),
    )
