"""Joining a pod interface to a VM NIC, inside the launcher pod's namespace.

bridge: netN becomes the port of an in-pod bridge `k6t-netN` next to a tap for the VM.
The VM NIC takes netN's MAC (the one the node's macspoofchk allows), netN gets a new
one, and netN's addresses move to the guest (as KubeVirt's bridge binding does).
macvtap: the macvtap the plugin made is the NIC; its character device goes to qemu.
masquerade (the pod network's eth0): vm.masquerade. All return an fd for qemu's
`-netdev tap,fd=`; undo puts the pod back as CNI left it.
"""

from __future__ import annotations

import ipaddress

from multihome.cni.errors import CNIError
from multihome.net import addr, links, netns, sysctl, tapfd
from multihome.net.netns import Netlink
from multihome.vm import masquerade, tap
from multihome.vm.errors import VMError
from multihome.vm.naming import bridge_name, random_mac, tap_name
from multihome.vm.state import Nic

STEP = "binding"
__all__ = ["bind", "binding_for", "bridge_name", "random_mac", "tap_name", "unbind"]


def _no_ipv6(ifname: str) -> None:
    # the bridge, the tap and netN carry only the guest's frames: their own IPv6
    # link-local traffic would leave with MACs macspoofchk drops anyway
    sysctl.write_best_effort(sysctl.iface_key("ipv6", ifname, "disable_ipv6"), "1")


def _pod_link(ipr: Netlink, nic: Nic) -> links.Link:
    """The pod interface the NIC binds to; its MAC becomes the VM NIC's."""
    link = links.by_name(ipr, nic.ifname)
    if link is None:
        raise VMError(STEP, f"the pod has no interface {nic.ifname}")
    nic.mac = link.mac
    return link


def bind_bridge(pod_netns: str, nic: Nic) -> int:
    """Make the in-pod bridge and the tap; returns the tap fd. `nic` records the changes."""
    try:
        with netns.iproute_in(pod_netns) as ipr:
            link = _pod_link(ipr, nic)
            owned = [a for a in addr.list_addresses(ipr, link.index)
                     if not a.ip.is_link_local]
            nic.pod_addresses = [str(a) for a in owned]
            for a in owned:
                addr.delete_address(ipr, link.index, a, ifname=nic.ifname)
            nic.addresses = nic.addresses or [str(a) for a in owned if a.version == 4]
            nic.bridge, nic.tap, nic.pod_mac = (bridge_name(nic.ifname),
                                                tap_name(nic.ifname), random_mac())
            links.set_down(ipr, link.index)
            links.set_mac(ipr, link.index, nic.pod_mac)
            bridge = links.ensure_bridge(ipr, nic.bridge)
            links.set_master(ipr, link.index, bridge.index)
            links.set_up(ipr, link.index)
        fd = tap.open_port(pod_netns, nic.tap, bridge.index, STEP)
        with netns.entered(pod_netns):  # best effort: cannot fail
            for name in (nic.bridge, nic.tap, nic.ifname):
                _no_ipv6(name)
        return fd
    except VMError:
        raise
    except CNIError as e:
        raise VMError(STEP, f"bridge binding of {nic.ifname} failed", str(e)) from e


def unbind_bridge(pod_netns: str, nic: Nic) -> None:
    """Remove the tap and bridge, give netN back its MAC and addresses; gone parts are fine."""
    if not netns.exists(pod_netns):
        return
    with netns.iproute_in(pod_netns) as ipr:
        for name in (nic.tap, nic.bridge):
            if name:
                links.delete_by_name(ipr, name)
        link = links.by_name(ipr, nic.ifname)
        if link is None or not nic.pod_mac:
            return
        if link.mac != nic.mac:
            links.set_down(ipr, link.index)
            links.set_mac(ipr, link.index, nic.mac)
        links.set_up(ipr, link.index)
        for text in nic.pod_addresses:
            addr.add_address(ipr, link.index, ipaddress.ip_interface(text), nodad=True,
                             ifname=nic.ifname)


def bind_macvtap(pod_netns: str, nic: Nic) -> int:
    """The macvtap's character device, opened for qemu; the VM NIC must use its MAC."""
    try:
        with netns.iproute_in(pod_netns) as ipr:
            links.set_up(ipr, _pod_link(ipr, nic).index)
        return tapfd.open_macvtap(pod_netns, nic.ifname)
    except VMError:
        raise
    except CNIError as e:
        raise VMError(STEP, f"macvtap binding of {nic.ifname} failed", str(e)) from e


def binding_for(pod_netns: str, ifname: str) -> str:
    """macvtap for a macvtap interface, the bridge binding for everything else."""
    with netns.iproute_in(pod_netns) as ipr:
        link = links.by_name(ipr, ifname)
    return "macvtap" if link is not None and link.kind == "macvtap" else "bridge"


def bind(pod_netns: str, nic: Nic) -> int:
    if nic.binding == "masquerade":
        return masquerade.bind(pod_netns, nic)
    return bind_macvtap(pod_netns, nic) if nic.binding == "macvtap" \
        else bind_bridge(pod_netns, nic)


def unbind(pod_netns: str, nic: Nic) -> None:
    if nic.binding == "bridge":
        unbind_bridge(pod_netns, nic)
    elif nic.binding == "masquerade":
        masquerade.unbind(pod_netns, nic)
    # macvtap: the device is the plugin's; the fd closes with qemu, DEL removes the link
