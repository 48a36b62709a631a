"""The link changes every attachment makes, packed by hand (see rtnl_wire for why).

A veth pair born with its peer in the container's namespace, and a link set up or down
and into a bridge: RTM_NEWLINK with the attributes iproute2 sends for the same change.
links.py keeps the meaning (names, errors); this module only speaks the protocol.
"""

from __future__ import annotations

import struct
from typing import Any

from multihome.net import rtnl_wire
from multihome.net.link_reads import (
    IFINFO,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    IFLA_MASTER,
    IFLA_MTU,
    RTM_NEWLINK,
)

IFF_UP = 0x1
IFLA_NET_NS_FD = 28
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
NLA_F_NESTED = 0x8000


def _mac_bytes(mac: str) -> bytes:
    """"aa:bb:..." as six bytes; ValueError for anything else (the caller's config)."""
    raw = bytes.fromhex(mac.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def set_link(ipr: Any, index: int, *, up: bool | None = None, master: int | None = None) -> None:
    """Set a link up or down and/or make it a port of `master` (0: no master), in one
    request. Raises NetlinkError."""
    flags = IFF_UP if up else 0
    change = IFF_UP if up is not None else 0
    body = IFINFO.pack(0, 0, index, flags, change)
    if master is not None:
        body += rtnl_wire.attr_u32(IFLA_MASTER, master)
    rtnl_wire.request(ipr, RTM_NEWLINK, rtnl_wire.NLM_F_ACK, body)


def create_veth(ipr: Any, name: str, peer_name: str, peer_netns_fd: int, *, mtu: int = 0,
                peer_mac: str = "") -> None:
    """A veth pair: `name` in `ipr`'s namespace, `peer_name` born in the namespace of
    `peer_netns_fd`. Raises NetlinkError (EEXIST: either name is taken) or ValueError
    (a malformed MAC)."""
    peer = IFINFO.pack(0, 0, 0, 0, 0) + rtnl_wire.attr_str(IFLA_IFNAME, peer_name) \
        + rtnl_wire.attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
    own = rtnl_wire.attr_str(IFLA_IFNAME, name)
    if mtu:
        peer += rtnl_wire.attr_u32(IFLA_MTU, mtu)
        own += rtnl_wire.attr_u32(IFLA_MTU, mtu)
    if peer_mac:
        peer += rtnl_wire.attr(IFLA_ADDRESS, _mac_bytes(peer_mac))
    info = rtnl_wire.attr_str(IFLA_INFO_KIND, "veth") + rtnl_wire.attr(
        IFLA_INFO_DATA | NLA_F_NESTED, rtnl_wire.attr(VETH_INFO_PEER | NLA_F_NESTED, peer))
    body = IFINFO.pack(0, 0, 0, 0, 0) + own + rtnl_wire.attr(IFLA_LINKINFO | NLA_F_NESTED,
                                                              info)
    rtnl_wire.request(ipr, RTM_NEWLINK, rtnl_wire.NLM_F_ACK | rtnl_wire.NLM_F_CREATE
                      | rtnl_wire.NLM_F_EXCL, body)
