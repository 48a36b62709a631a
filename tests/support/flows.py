"""Real flows between lab pods: TCP connects, UDP datagrams and pings, each answering
whether it got through. Sockets are made inside the pods' network namespaces (the test
thread enters the namespace, opens the socket and comes back), so nothing leaves them.

A denied flow is one the policy drops: it shows as a timeout, kept short (DENY_WAIT).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator

from multihome.net import netns

DENY_WAIT = 1.0


def _family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


@contextlib.contextmanager
def listening(ns_path: str, ip: str, port: int, kind: int = socket.SOCK_STREAM
              ) -> Iterator[socket.socket]:
    """A TCP listener (or bound UDP socket) on `ip:port` inside the namespace."""
    with netns.entered(ns_path):
        sock = socket.socket(_family(ip), kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(16)
        yield sock
    finally:
        sock.close()


def tcp_connect(ns_path: str, ip: str, port: int) -> socket.socket | None:
    """A connected socket from the namespace to `ip:port`, or None when it did not get
    through (dropped: timeout; refused: no listener)."""
    with netns.entered(ns_path):
        sock = socket.socket(_family(ip), socket.SOCK_STREAM)
    sock.settimeout(DENY_WAIT)
    try:
        sock.connect((ip, port))
    except OSError:
        sock.close()
        return None
    return sock


def tcp_ok(ns_path: str, ip: str, port: int) -> bool:
    sock = tcp_connect(ns_path, ip, port)
    if sock is None:
        return False
    sock.close()
    return True


def udp_ok(src_ns: str, dst_ns: str, ip: str, port: int) -> bool:
    """Whether a datagram from `src_ns` reaches a socket bound on `ip:port` in `dst_ns`."""
    with listening(dst_ns, ip, port, socket.SOCK_DGRAM) as server:
        server.settimeout(DENY_WAIT)
        with netns.entered(src_ns):
            client = socket.socket(_family(ip), socket.SOCK_DGRAM)
        with client:
            client.sendto(b"policy?", (ip, port))
            try:
                return server.recv(64) == b"policy?"
            except TimeoutError:
                return False


def ping_ok(ns_name: str, ip: str) -> bool:
    proc = subprocess.run(["ip", "netns", "exec", ns_name, "ping", "-c", "1", "-W",
                           str(int(DENY_WAIT)), ip], capture_output=True, timeout=30,
                          check=False)
    return proc.returncode == 0


def still_talks(conn: socket.socket, server: socket.socket) -> bool:
    """Whether an established connection still carries data (accepts its peer first)."""
    server.settimeout(DENY_WAIT)
    try:
        peer, _ = server.accept()
    except TimeoutError:
        return False
    with peer:
        peer.settimeout(DENY_WAIT)
        conn.sendall(b"ping")
        try:
            return peer.recv(4) == b"ping"
        except TimeoutError:
            return False
