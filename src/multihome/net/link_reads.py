"""Reading one link straight off an IPRoute's netlink socket.

Every ADD reads links five times (the bridge, the new veth's two ends, the port's state,
the bridge's MAC afterwards), and pyroute2's synchronous API spends ~0.6 ms of Python on
each: an event loop set up and torn down per call, then every one of the ~60 attributes
of the reply decoded into objects. This sends the RTM_GETLINK itself on the same socket
(between pyroute2's calls it reads nothing from it) and reads only the top-level
attributes a `links.Link` holds, with struct: ~0.05 ms (transport: rtnl_wire). The rest
of the message is kept as bytes and decoded by pyroute2 only when a caller asks for
IFLA_INFO_DATA.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from multihome.net import rtnl_wire

RTM_NEWLINK = 16
RTM_GETLINK = 18

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_TXQLEN = 13
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_IFALIAS = 20
IFLA_EXT_MASK = 29
IFLA_NUM_TX_QUEUES = 31
IFLA_LINK_NETNSID = 37
IFLA_INFO_KIND = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3

# RFC 2863 operational states, named as pyroute2 names them
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change


@dataclass(frozen=True)
class RawLink:
    """One RTM_NEWLINK: its header fields, its top-level attributes, the message."""

    index: int
    flags: int
    attrs: dict[int, bytes]
    message: bytes

    def text(self, attr: int) -> str:
        return self.attrs.get(attr, b"").split(b"\0", 1)[0].decode(errors="replace")

    def u32(self, attr: int) -> int | None:
        raw = self.attrs.get(attr)
        return struct.unpack_from("=I", raw)[0] if raw is not None and len(raw) >= 4 else None

    def s32(self, attr: int) -> int | None:
        raw = self.attrs.get(attr)
        return struct.unpack_from("=i", raw)[0] if raw is not None and len(raw) >= 4 else None

    def mac(self) -> str:
        return ":".join(f"{b:02x}" for b in self.attrs.get(IFLA_ADDRESS, b""))

    def operstate(self) -> str:
        raw = self.attrs.get(IFLA_OPERSTATE)
        return OPERSTATES[raw[0]] if raw and raw[0] < len(OPERSTATES) else ""

    def kind(self) -> str:
        info = self.attrs.get(IFLA_LINKINFO)
        return rtnl_wire.attrs(info, 0).get(IFLA_INFO_KIND, b"").split(b"\0", 1)[0].decode(
            errors="replace") if info else ""

    def decoded(self) -> Any:
        """The whole message decoded by pyroute2 (for the rare reader of other parts)."""
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

        msg = ifinfmsg(self.message)
        msg.decode()
        return msg


@contextmanager
def socket_of(ipr: Any) -> Iterator[socket.socket]:
    """The IPRoute's netlink socket as a socket object, for a call or two; the
    descriptor stays the IPRoute's (detached, never closed, on the way out)."""
    sock = socket.socket(fileno=ipr.fileno())
    try:
        yield sock
    finally:
        sock.detach()


def get_link(ipr: Any, *, index: int = 0, name: str = "") -> RawLink | None:
    """The link with this index (or name), None when there is none. Raises NetlinkError
    for any other refusal, as pyroute2 would."""
    body = IFINFO.pack(0, 0, index, 0, 0)
    if name:
        body += rtnl_wire.attr_str(IFLA_IFNAME, name)
    body += rtnl_wire.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
    try:
        answer = rtnl_wire.request(ipr, RTM_GETLINK, 0, body)
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return None
        raise
    for kind, message in answer:
        if kind == RTM_NEWLINK:
            _family, _type, idx, flags, _change = IFINFO.unpack_from(
                message, rtnl_wire.HEADER.size)
            return RawLink(idx, flags, rtnl_wire.attrs(
                message, rtnl_wire.HEADER.size + IFINFO.size), message)
    raise NetlinkError(errno.EPROTO, "no link in the answer to RTM_GETLINK")
