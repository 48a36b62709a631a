"""Reading one link straight off an IPRoute's netlink socket.

Every ADD reads links five times (the bridge, the new veth's two ends, the port's state,
the bridge's MAC afterwards), and pyroute2's synchronous API spends ~0.6 ms of Python on
each: an event loop set up and torn down per call, then every one of the ~60 attributes
of the reply decoded into objects. This sends the RTM_GETLINK itself on the same socket
(between pyroute2's calls it reads nothing from it) and reads only the top-level
attributes a `links.Link` holds, with struct: ~0.05 ms. The rest of the message is kept
as bytes and decoded by pyroute2 only when a caller asks for IFLA_INFO_DATA.
"""

from __future__ import annotations

import errno
import itertools
import select
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

NLMSG_ERROR = 2
RTM_NEWLINK = 16
RTM_GETLINK = 18
NLM_F_REQUEST = 1

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
NLA_TYPE_MASK = 0x3FFF  # without the nested / byte-order flags
RTEXT_FILTER_SKIP_STATS = 1 << 3

# RFC 2863 operational states, named as pyroute2 names them
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_ATTR = struct.Struct("=HH")
REPLY_BYTES = 65536
REPLY_WAIT_S = 5.0
_seq = itertools.count(0x4D480000)


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
        return _attrs(info, 0).get(IFLA_INFO_KIND, b"").split(b"\0", 1)[0].decode(
            errors="replace") if info else ""

    def decoded(self) -> Any:
        """The whole message decoded by pyroute2 (for the rare reader of other parts)."""
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

        msg = ifinfmsg(self.message)
        msg.decode()
        return msg


def _attrs(buf: bytes, offset: int) -> dict[int, bytes]:
    """Attributes from `offset` on, the first of each type (as pyroute2's get_attr)."""
    out: dict[int, bytes] = {}
    end = len(buf)
    while offset + 4 <= end:
        length, kind = _ATTR.unpack_from(buf, offset)
        if length < 4 or offset + length > end:
            break
        out.setdefault(kind & NLA_TYPE_MASK, buf[offset + 4:offset + length])
        offset += (length + 3) & ~3
    return out


def _attr(kind: int, payload: bytes) -> bytes:
    data = _ATTR.pack(4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


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
    seq = next(_seq) & 0xFFFFFFFF
    body = _IFINFO.pack(0, 0, index, 0, 0)
    if name:
        body += _attr(IFLA_IFNAME, name.encode() + b"\0")
    body += _attr(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS))
    request = _HEADER.pack(_HEADER.size + len(body), RTM_GETLINK, NLM_F_REQUEST, seq, 0) + body
    with socket_of(ipr) as sock:
        sock.send(request)
        for _ in range(16):  # anything that is not our answer is skipped, a bounded number
            reply = _receive(sock)
            if len(reply) < _HEADER.size:
                continue
            length, kind, _flags, rseq, _pid = _HEADER.unpack_from(reply, 0)
            if rseq != seq:
                continue
            if kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", reply, _HEADER.size)[0]
                if code == errno.ENODEV:
                    return None
                raise NetlinkError(code, errno.errorcode.get(code, str(code)))
            if kind != RTM_NEWLINK:
                continue
            _family, _type, idx, flags, _change = _IFINFO.unpack_from(reply, _HEADER.size)
            message = reply[:length]
            return RawLink(idx, flags, _attrs(message, _HEADER.size + _IFINFO.size), message)
        raise NetlinkError(errno.EPROTO, "no answer to RTM_GETLINK")


def _receive(sock: socket.socket) -> bytes:
    """One datagram; the socket may be non-blocking (pyroute2's event loop made it so),
    and the kernel answers a GETLINK before send returns, so a wait here is bounded."""
    try:
        return sock.recv(REPLY_BYTES)
    except BlockingIOError:
        ready, _, _ = select.select([sock], [], [], REPLY_WAIT_S)
        if not ready:
            raise NetlinkError(errno.ETIMEDOUT, "no answer to RTM_GETLINK") from None
        return sock.recv(REPLY_BYTES)
