"""Which namespace this process's sockets belong to: a socket keeps its network
namespace alive, and with it every link in it, after the namespace's name is gone."""

from __future__ import annotations

import os
import socket
import stat

from multihome.net import netns

SO_NETNS_COOKIE = 71  # linux >= 5.14: the network namespace of a socket, as a cookie


def _cookie(sock: socket.socket) -> int:
    return int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little")


def own_sockets_in(path: str) -> int:
    """How many of this process's open sockets live in the namespace at `path`."""
    with netns.entered(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        target, skip = _cookie(probe), probe.fileno()
    finally:
        probe.close()
    count = 0
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd == skip or not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            dup = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
        try:
            count += _cookie(dup) == target
        finally:
            dup.close()
    return count
