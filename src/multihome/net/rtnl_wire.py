"""rtnetlink requests written straight onto an IPRoute's socket, for the hot path.

pyroute2's synchronous API runs an event loop per call and builds objects for every
attribute of every message: ~0.15-0.3 ms of Python a request, and an ADD makes a dozen
(measured in a warm process; profiles of a burst of pods put it first among the daemon's
own costs). The few requests every attachment makes (read a link, set one up or into a
bridge, create a veth pair, add or list addresses) are packed here with struct and sent
on the same socket pyroute2 uses, between its calls (when it reads nothing from it).
Everything else still goes through pyroute2, which also decodes any message a caller
wants whole. Errors are pyroute2's NetlinkError with the kernel's errno, as from its
own calls.

The socket must not be subscribed to multicast groups (netns.netlink() opens them with
none): otherwise notifications would queue before our answer. Foreign messages are
skipped all the same, up to a bound, and every wait has a deadline.
"""

from __future__ import annotations

import errno
import itertools
import os
import select
import struct
import time
from collections.abc import Iterable
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300

HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_ATTR = struct.Struct("=HH")
NLA_TYPE_MASK = 0x3FFF  # without the nested / byte-order flags
REPLY_BYTES = 65536
REPLY_WAIT_S = 5.0
FOREIGN_MAX = 1024  # messages that answer someone else, skipped before giving up
_seq = itertools.count(0x4D480000)


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to four bytes."""
    data = _ATTR.pack(4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def attr_str(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attrs(buf: bytes, offset: int) -> dict[int, bytes]:
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


def _error(code: int) -> NetlinkError:
    return NetlinkError(code, os.strerror(code))


def request(ipr: Any, kind: int, flags: int, body: bytes, *,
            answers: int = 1) -> list[tuple[int, bytes]]:
    """Send one request on `ipr`'s socket and collect its answer: (type, message) pairs.

    flags: NLM_F_ACK (a change: returns [] once acknowledged), NLM_F_DUMP (until the
    dump's end) or neither (a get: its first `answers` messages). Raises NetlinkError.
    """
    seq = next(_seq) & 0xFFFFFFFF
    fd = ipr.fileno()
    try:
        os.write(fd, HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST | flags, seq,
                                 0) + body)
    except OSError as e:  # one error type for callers, as from pyroute2
        raise _error(e.errno or errno.EIO) from e
    dump = flags & NLM_F_DUMP == NLM_F_DUMP
    out: list[tuple[int, bytes]] = []
    foreign = 0
    deadline = time.monotonic() + REPLY_WAIT_S
    while True:
        for mtype, mseq, message in _messages(_receive(fd, deadline)):
            if mseq != seq:
                foreign += 1
                if foreign > FOREIGN_MAX:
                    raise _error(errno.EPROTO)
                continue
            if mtype == NLMSG_ERROR:
                code = -struct.unpack_from("=i", message, HEADER.size)[0]
                if code:
                    raise _error(code)
                return out  # the acknowledgement
            if mtype == NLMSG_DONE:
                if len(message) >= HEADER.size + 4:
                    code = -struct.unpack_from("=i", message, HEADER.size)[0]
                    if code:
                        raise _error(code)
                return out
            out.append((mtype, message))
            if not dump and not flags & NLM_F_ACK and len(out) >= answers:
                return out


def _messages(datagram: bytes) -> Iterable[tuple[int, int, bytes]]:
    """(type, seq, message) of each netlink message a datagram holds (a dump packs many)."""
    offset = 0
    while offset + HEADER.size <= len(datagram):
        length, mtype, _flags, mseq, _pid = HEADER.unpack_from(datagram, offset)
        if length < HEADER.size or offset + length > len(datagram):
            return
        yield mtype, mseq, datagram[offset:offset + length]
        offset += (length + 3) & ~3


def _receive(fd: int, deadline: float) -> bytes:
    """One datagram; pyroute2 made the socket non-blocking, so wait for it, bounded."""
    while True:
        try:
            return os.read(fd, REPLY_BYTES)
        except BlockingIOError:
            left = deadline - time.monotonic()
            poller = select.poll()  # not select(): a daemon's descriptors may pass 1024
            poller.register(fd, select.POLLIN)
            if left <= 0 or not poller.poll(left * 1000):
                raise _error(errno.ETIMEDOUT) from None
        except OSError as e:  # ENOBUFS and the like: the answer is lost
            raise _error(e.errno or errno.EIO) from e
