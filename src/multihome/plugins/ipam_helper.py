"""What every interface plugin does around IPAM: delegate, undo on failure, configure.

A plugin's ADD collects undo steps while it works; `rollback` runs them newest first
when a later step fails, so a failed ADD leaves neither links nor IP allocations.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from multihome.cni.errors import CNIError, InvalidConfig
from multihome.cni.result import Result
from multihome.cni.skel import Call
from multihome.net import addr as net_addr
from multihome.net import links, netns, sysctl
from multihome.net import route as net_route
from multihome.net.netns import Netlink
from multihome.plugins.registry import IN_PROCESS

UndoSteps = list[Callable[[], Any]]


@contextlib.contextmanager
def rollback() -> Iterator[UndoSteps]:
    """Yield a list to push undo steps on; on any error run them in reverse, then re-raise."""
    undo: UndoSteps = []
    try:
        yield undo
    except BaseException:
        for step in reversed(undo):
            # Undo is best effort: the error worth reporting is the one that got us here.
            with contextlib.suppress(Exception):
                step()
        raise


def run(call: Call, ipam_type: str, command: str) -> Result | None:
    """Delegate `command` to the IPAM plugin with this call's environment and config."""
    cmd = dataclasses.replace(call.cmd, command=command)
    return IN_PROCESS.run(ipam_type, cmd, call.conf.raw)


def run_if_set(call: Call, ipam_type: str, command: str) -> None:
    """DEL/CHECK/STATUS/GC pass-through for plugins whose IPAM section is optional."""
    if ipam_type:
        run(call, ipam_type, command)


def prev_for_check(call: Call, ipam_type: str) -> Result:
    """CHECK's common start: IPAM checks its own state, and prevResult is required."""
    run_if_set(call, ipam_type, "CHECK")
    prev = call.conf.prev_result
    if prev is None:
        raise InvalidConfig("CHECK needs prevResult: the result of the ADD to check against")
    return prev


class HasIpam(Protocol):
    @property
    def ipam_type(self) -> str: ...


def ipam_only(parse: Callable[[Call], HasIpam], command: str) -> Callable[[Call], None]:
    """A STATUS or GC that only the plugin's IPAM has state for."""

    def entry(call: Call) -> None:
        run_if_set(call, parse(call).ipam_type, command)

    return entry


def delete_container_link(netns_path: str, ifname: str) -> None:
    """DEL of a link the plugin made in the container; a gone namespace took it along."""
    if not netns_path:
        return
    try:
        with netns.iproute_in(netns_path) as cipr:
            links.delete_by_name(cipr, ifname)
    except netns.NetnsGone:
        pass


def add(call: Call, ipam_type: str, undo: UndoSteps) -> Result:
    """IPAM ADD whose release is queued on `undo`; a result without IPs is an error."""
    result = run(call, ipam_type, "ADD")
    undo.append(lambda: run(call, ipam_type, "DEL"))
    if result is None or not result.ips:
        raise CNIError(f"IPAM plugin {ipam_type} returned no IP configuration")
    return result


def apply(ipam: Result, result: Result, cipr: Netlink, nsfd: int, link: links.Link) -> None:
    """Put IPAM's addresses, routes and DNS in `result` and on the container interface
    `link` (the one interface of `result`, index 0), which `cipr` sees."""
    result.ips, result.routes, result.dns = ipam.ips, ipam.routes, ipam.dns
    for ip in result.ips:
        ip.interface = 0
    configure_container(cipr, nsfd, link, result)


def configure_container(cipr: Netlink, nsfd: int, link: links.Link, result: Result, *,
                        enable_dad: bool = False) -> None:
    """Sysctls, addresses, up and routes of `link`, which `cipr` sees in the container."""
    dad_key = sysctl.iface_key("ipv6", link.name, "accept_dad")
    # /proc/sys/net shows the namespace of whoever opens it: enter for the writes only.
    with netns.entered(nsfd):
        if enable_dad:
            sysctl.write_best_effort(sysctl.iface_key("ipv6", link.name, "enhanced_dad"), "1")
            sysctl.write_best_effort(dad_key, "1")
        else:
            sysctl.write_best_effort(dad_key, "0")
        sysctl.write_best_effort(sysctl.iface_key("ipv4", link.name, "arp_notify"), "1")
    for ip in result.ips:
        net_addr.add_address(cipr, link.index, ip.address, nodad=not enable_dad,
                             ifname=link.name)
    links.set_up(cipr, link.index)
    gws = {ip.family: ip.gateway for ip in reversed(result.ips) if ip.gateway}
    for r in result.routes:
        gw = r.gw if r.gw is not None else gws.get(r.dst.version)
        net_route.add_route(cipr, r.dst, gw=gw, oif=link.index, mtu=r.mtu, advmss=r.advmss,
                            priority=r.priority, table=r.table, scope=r.scope)


def check_container(ipr: Netlink, link: links.Link, prev: Result, container_id: str) -> None:
    """CHECK: every address and route of the previous result is still in place."""
    have = set(net_addr.list_addresses(ipr, link.index))
    for ip in prev.ips:
        if ip.address not in have:
            raise CNIError(f"address {ip.address} is missing on {link.name}")
    for r in prev.routes:
        if not net_route.has_route(ipr, r.dst, r.gw):
            raise CNIError(f"route to {r.dst}" + (f" via {r.gw}" if r.gw else "")
                           + f" is missing in container {container_id}")
