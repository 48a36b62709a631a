"""Reachability checks from inside a network namespace: a DNS lookup through the node's
resolver and a TCP connect (the API server). Both are bounded by a deadline.

As with icmp.py, a socket keeps the namespace it was created in: it is opened while the
thread is inside the target namespace and used after the thread has returned. The DNS
query is a plain RFC 1035 question over UDP (standard library only): the node layer asks
"does this name resolve", it does not need a resolver library's features.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import select
import socket
import struct
import time
from pathlib import Path

from multihome.net import netns

RESOLV_CONF = Path("/etc/resolv.conf")
NETNS_ETC = Path("/etc/netns")  # `ip netns exec NAME` binds /etc/netns/NAME/resolv.conf
MAX_NAMESERVERS = 3  # glibc's MAXNS: further lines are ignored by the node's resolver too
MAX_RESOLV_BYTES = 64 * 1024
LABEL_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
QTYPE_A, QTYPE_AAAA = 1, 28


def valid_name(name: str) -> bool:
    name = name.removesuffix(".")
    return 0 < len(name) <= 253 and all(LABEL_RE.match(p) for p in name.split("."))


def resolv_conf(netns_path: str | None) -> Path:
    """The resolver configuration the node (or the named namespace playing it) uses."""
    if netns_path and os.path.dirname(netns_path) in (netns.NETNS_RUN_DIR, "/run/netns"):
        own = NETNS_ETC / os.path.basename(netns_path) / "resolv.conf"
        if own.is_file():
            return own
    return RESOLV_CONF


def nameservers(netns_path: str | None) -> list[str]:
    """The nameserver addresses of the node's resolv.conf (at most MAX_NAMESERVERS)."""
    try:
        with resolv_conf(netns_path).open("rb") as f:
            text = f.read(MAX_RESOLV_BYTES).decode("utf-8", "replace")
    except OSError:
        return []
    out: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                out.append(str(ipaddress.ip_address(parts[1].split("%")[0])))
            except ValueError:
                continue
        if len(out) == MAX_NAMESERVERS:
            break
    return out


def _socket(family: int, kind: int, netns_path: str | None) -> socket.socket:
    if netns_path:
        with netns.entered(netns_path):
            return socket.socket(family, kind)
    return socket.socket(family, kind)


def _question(name: str, qtype: int) -> tuple[int, bytes]:
    ident = secrets.randbelow(0x10000)
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)  # RD, one question
    qname = b"".join(bytes([len(p)]) + p.encode("ascii")
                     for p in name.removesuffix(".").split(".")) + b"\0"
    return ident, header + qname + struct.pack("!HH", qtype, 1)


def _answered(reply: bytes, ident: int) -> bool | None:
    """True: NOERROR with an answer; False: a definite failure; None: not our reply."""
    if len(reply) < 12:
        return None
    rid, flags, _, ancount, _, _ = struct.unpack("!HHHHHH", reply[:12])
    if rid != ident or not flags & 0x8000:
        return None
    return bool((flags & 0x000F) == 0 and ancount > 0)


def _ask(server: str, name: str, qtype: int, netns_path: str | None,
         deadline: float) -> bool:
    ip = ipaddress.ip_address(server)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    ident, query = _question(name, qtype)
    with _socket(family, socket.SOCK_DGRAM, netns_path) as sock:
        try:
            sock.connect((server, 53))
            sock.send(query)
        except OSError:
            return False
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                return False
            try:
                reply = sock.recv(4096)
            except OSError:  # ICMP port unreachable: no server there
                return False
            result = _answered(reply, ident)
            if result is not None:
                return result
    return False


def resolves(name: str, *, netns_path: str | None = None, timeout: float = 2.0,
             servers: list[str] | None = None) -> bool:
    """True when one of the node's nameservers answers `name` (A, else AAAA) in time.
    At most `timeout` seconds in all, shared equally by the nameservers (a silent first
    one must not use up the time of the others)."""
    if not valid_name(name):
        return False
    servers = servers if servers is not None else nameservers(netns_path)
    share = timeout / max(1, len(servers))
    for server in servers:
        deadline = time.monotonic() + share
        for qtype in (QTYPE_A, QTYPE_AAAA):
            if _ask(server, name, qtype, netns_path, deadline):
                return True
    return False


def connects(host: str, port: int, *, netns_path: str | None = None,
             timeout: float = 3.0) -> bool:
    """True when a TCP connection to host:port (an address) opens within `timeout`."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    with _socket(family, socket.SOCK_STREAM, netns_path) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((str(ip), port))
        except OSError:
            return False
    return True
