"""Every wait of rtnl_wire has a bound: a peer that never answers, or answers only with
messages for someone else, ends in a NetlinkError, never a hang."""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from multihome.net import rtnl_wire


class _Peer:
    """One end of a datagram socketpair standing where the kernel's socket would be."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()


@pytest.fixture
def pair() -> Iterator[tuple[_Peer, socket.socket]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    with ours, theirs:
        yield _Peer(ours), theirs


def test_no_answer_ends_at_the_deadline(pair: tuple[_Peer, socket.socket],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtnl_wire, "REPLY_WAIT_S", 0.2)
    handle, _ = pair
    with pytest.raises(NetlinkError) as e:
        rtnl_wire.request(handle, 18, 0, b"\0" * 16)
    assert e.value.code == errno.ETIMEDOUT


def test_answers_for_someone_else_are_skipped_a_bounded_number_of_times(
        pair: tuple[_Peer, socket.socket]) -> None:
    handle, kernel = pair
    foreign = rtnl_wire.HEADER.pack(rtnl_wire.HEADER.size + 4, 16, 0, 7, 0) + b"\0" * 4
    for _ in range(rtnl_wire.FOREIGN_MAX // 64 + 1):
        kernel.send(foreign * 64)  # 64 messages a datagram, as a dump packs them
    with pytest.raises(NetlinkError) as e:
        rtnl_wire.request(handle, 18, 0, b"\0" * 16)
    assert e.value.code == errno.EPROTO


def test_a_truncated_message_is_not_read_past_its_datagram(
        pair: tuple[_Peer, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtnl_wire, "REPLY_WAIT_S", 0.2)
    handle, kernel = pair
    # claims 4 KiB but carries 20 bytes: nothing is taken from it, the wait goes on
    kernel.send(struct.pack("=IHHII", 4096, 2, 0, 0x4D480000, 0) + b"\0" * 4)
    with pytest.raises(NetlinkError) as e:
        rtnl_wire.request(handle, 18, 0, b"\0" * 16)
    assert e.value.code == errno.ETIMEDOUT


def test_the_kernels_refusal_is_its_errno(pair: tuple[_Peer, socket.socket]) -> None:
    handle, kernel = pair
    seq = next(rtnl_wire._seq)  # the one the request will take is the next after this
    error = struct.pack("=i", -errno.EPERM) + b"\0" * 16
    kernel.send(rtnl_wire.HEADER.pack(rtnl_wire.HEADER.size + len(error), rtnl_wire.NLMSG_ERROR,
                                      0, (seq + 1) & 0xFFFFFFFF, 0) + error)
    with pytest.raises(NetlinkError) as e:
        rtnl_wire.request(handle, 16, rtnl_wire.NLM_F_ACK, b"\0" * 16)
    assert e.value.code == errno.EPERM
