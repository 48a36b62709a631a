"""Links stacked on a lower device (macvlan, macvtap, ipvlan, vlan) and tap devices.

Each is created with `net_ns_fd` when the caller wants it born inside a container
namespace; the name is then resolved in that namespace, so a container name never
clashes with a host name. A kernel without the link kind gets a sentence saying so.
"""

from __future__ import annotations

import errno
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from multihome.cni.errors import CNIError, InvalidConfig
from multihome.net import links
from multihome.net.links import Link

MACVLAN_MODES = ("bridge", "private", "vepa", "passthru")
IPVLAN_MODES = ("l2", "l3", "l3s")
MAX_VLAN_ID = 4094

# What the kernel needs for each kind, named in the error when the kind is missing.
_KERNEL_OPTION = {"macvlan": "CONFIG_MACVLAN", "macvtap": "CONFIG_MACVTAP",
                  "ipvlan": "CONFIG_IPVLAN", "vlan": "CONFIG_VLAN_8021Q",
                  "tuntap": "CONFIG_TUN"}


def _create(ipr: IPRoute, spec: dict[str, Any], what: str) -> None:
    kind = spec["kind"]
    try:
        ipr.link("add", **spec)
    except NetlinkError as e:
        if e.code == errno.EOPNOTSUPP:
            raise CNIError(f"cannot create {what}: this kernel has no {kind} links "
                           f"({_KERNEL_OPTION.get(kind, kind)})") from e
        if e.code == errno.EEXIST:
            raise CNIError(f"cannot create {what}: an interface named {spec['ifname']} "
                           "already exists") from e
        if e.code == errno.EBUSY:
            raise CNIError(f"cannot create {what}: the lower device is busy (a bridge or "
                           "bond port, or a passthru macvlan already uses it)") from e
        if e.code == errno.EADDRNOTAVAIL and "address" in spec:
            raise InvalidConfig(f"cannot use MAC address {spec['address']} for {what}") from e
        raise CNIError(f"cannot create {what}",
                       f"{e.args[1] if len(e.args) > 1 else e} (errno {e.code})") from e


def _spec(kind: str, name: str, lower: int, *, mtu: int, mac: str,
          netns_fd: int | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ifname": name, "kind": kind, "link": lower}
    if mtu:
        spec["mtu"] = mtu
    if mac:
        spec["address"] = mac
    if netns_fd is not None:
        spec["net_ns_fd"] = netns_fd
    return spec


def create_macvlan(ipr: IPRoute, name: str, lower: int, mode: str, *, mtu: int = 0,
                   mac: str = "", netns_fd: int | None = None, tap: bool = False,
                   nopromisc: bool = False) -> None:
    """A macvlan (or, with `tap`, a macvtap) on link `lower` in `ipr`'s namespace;
    `nopromisc`: a passthru one leaves its lower device's promiscuous mode alone."""
    kind = "macvtap" if tap else "macvlan"
    spec = _spec(kind, name, lower, mtu=mtu, mac=mac, netns_fd=netns_fd)
    spec[f"{kind}_mode"] = mode
    if nopromisc:
        spec[f"{kind}_flags"] = "nopromisc"
    _create(ipr, spec, f"{kind} {name} in {mode} mode")


def create_ipvlan(ipr: IPRoute, name: str, lower: int, mode: str, *, mtu: int = 0,
                  netns_fd: int | None = None) -> None:
    spec = _spec("ipvlan", name, lower, mtu=mtu, mac="", netns_fd=netns_fd)
    spec["ipvlan_mode"] = IPVLAN_MODES.index(mode)
    _create(ipr, spec, f"ipvlan {name} in {mode} mode")


def create_vlan(ipr: IPRoute, name: str, lower: int, vlan_id: int, *, mtu: int = 0,
                netns_fd: int | None = None) -> None:
    spec = _spec("vlan", name, lower, mtu=mtu, mac="", netns_fd=netns_fd)
    spec["vlan_id"] = vlan_id
    _create(ipr, spec, f"VLAN {vlan_id} link {name}")


def create_tap(ipr: IPRoute, name: str, *, multi_queue: bool = False,
               owner: int | None = None, group: int | None = None) -> None:
    """A persistent tap device in the namespace of the calling thread.

    Tap devices cannot be made over rtnetlink: pyroute2 opens /dev/net/tun, which binds
    the device to the namespace the thread is in when it is opened.
    """
    spec: dict[str, Any] = {"ifname": name, "kind": "tuntap", "mode": "tap",
                            "ifr": {"no_pi": 1, "multi_queue": int(multi_queue)}}
    if owner is not None:
        spec["uid"] = owner
    if group is not None:
        spec["gid"] = group
    try:
        _create(ipr, spec, f"tap {name}")
    except OSError as e:  # the ioctl path raises OSError, not NetlinkError
        if e.errno == errno.EBUSY:
            raise CNIError(f"cannot create tap {name}: an interface with that name "
                           "already exists") from e
        raise CNIError(f"cannot create tap {name}", str(e)) from e


def macvlan_mode(link: Link) -> str:
    """The macvlan/macvtap mode of a link as the config spells it."""
    return str(link.data.get("IFLA_MACVLAN_MODE") or link.data.get("IFLA_MACVTAP_MODE") or "")


def macvlan_promiscuous(link: Link) -> bool:
    """False when the macvlan/macvtap was made with the `nopromisc` flag."""
    flags = link.data.get("IFLA_MACVLAN_FLAGS") or link.data.get("IFLA_MACVTAP_FLAGS")
    return flags not in ("nopromisc", 1)


def ipvlan_mode(link: Link) -> str:
    mode = link.data.get("IFLA_IPVLAN_MODE")
    return IPVLAN_MODES[mode] if isinstance(mode, int) and mode < len(IPVLAN_MODES) else ""


def lower_link(ipr: IPRoute, name: str, what: str) -> Link:
    """The lower device `name`; missing is a config error naming the plugin key."""
    link = links.by_name(ipr, name)
    if link is None:
        raise InvalidConfig(f"{what} {name!r} does not exist: set it to an existing interface")
    return link
