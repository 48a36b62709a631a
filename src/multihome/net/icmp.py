"""Echo requests over raw ICMP sockets, optionally from inside a network namespace.

A socket keeps the namespace it was created in, so it is opened while the thread is
inside the target namespace and used after the thread has returned.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time

from multihome.net import netns

ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY = 128, 129


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _open(version: int) -> socket.socket:
    if version == 4:
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    return socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)


def ping(target: str, *, netns_path: str | None = None, count: int = 3,
         timeout: float = 1.0) -> bool:
    """True when `target` answers one of `count` echo requests within `timeout` each."""
    ip = ipaddress.ip_address(target)
    if netns_path:
        with netns.entered(netns_path):
            sock = _open(ip.version)
    else:
        sock = _open(ip.version)
    ident = os.getpid() & 0xFFFF
    request, reply = ((ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY) if ip.version == 4
                      else (ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY))
    with sock:
        for seq in range(1, count + 1):
            header = struct.pack("!BBHHH", request, 0, 0, ident, seq)
            payload = b"multihome-probe"
            csum = _checksum(header + payload) if ip.version == 4 else 0  # kernel does v6
            packet = struct.pack("!BBHHH", request, 0, csum, ident, seq) + payload
            try:
                sock.sendto(packet, (str(ip), 0))
            except OSError:
                time.sleep(timeout)  # no route: wait like a lost packet would
                continue
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    break
                data, src = sock.recvfrom(2048)
                icmp = data[(data[0] & 0x0F) * 4:] if ip.version == 4 else data
                if len(icmp) < 8 or ipaddress.ip_address(src[0].split("%")[0]) != ip:
                    continue
                rtype, _, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
                if rtype == reply and rid == ident and rseq == seq:
                    return True
    return False
