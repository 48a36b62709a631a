"""Addresses on links (IPv4 and IPv6), with DAD control for IPv6."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from multihome.cni.errors import CNIError
from multihome.net import rtnl_wire

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

IFA_F_NODAD = 0x02
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4
RTM_NEWADDR = 20
RTM_GETADDR = 22
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def list_addresses(ipr: IPRoute, index: int, version: int | None = None) -> list[IPInterface]:
    """Global and link addresses of a link, as interfaces (address/prefix).

    One RTM_GETADDR dump on the socket itself (rtnl_wire: every ADD lists the bridge's
    and the pod's addresses); the kernel dumps the namespace's, we keep the link's."""
    family = _family(version) if version is not None else socket.AF_UNSPEC
    out: list[IPInterface] = []
    for _kind, message in rtnl_wire.request(ipr, RTM_GETADDR, rtnl_wire.NLM_F_DUMP,
                                            _IFADDR.pack(family, 0, 0, 0, 0)):
        fam, prefixlen, _flags, _scope, idx = _IFADDR.unpack_from(message,
                                                                  rtnl_wire.HEADER.size)
        if idx != index or fam not in (socket.AF_INET, socket.AF_INET6):
            continue
        found = rtnl_wire.attrs(message, rtnl_wire.HEADER.size + _IFADDR.size)
        raw = (found.get(IFA_LOCAL) if fam == socket.AF_INET else None) \
            or found.get(IFA_ADDRESS)
        if raw is None or len(raw) != (4 if fam == socket.AF_INET else 16):
            continue
        out.append(ipaddress.ip_interface((ipaddress.ip_address(raw), prefixlen)))
    return out


def address_flags(ipr: IPRoute, index: int, address: IPInterface) -> int:
    """IFA_FLAGS of one address (0 if absent): lets tests and CHECK see IFA_F_NODAD."""
    for msg in ipr.get_addr(index=index, family=_family(address.version)):
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if ipaddress.ip_address(addr) == address.ip and msg["prefixlen"] == \
                address.network.prefixlen:
            return int(msg.get_attr("IFA_FLAGS") or msg["flags"])
    return 0


def add_address(ipr: IPRoute, index: int, address: IPInterface, *, nodad: bool = False,
                ifname: str = "") -> None:
    """Add `address`; an identical one already there is fine.

    `nodad` marks IPv6 addresses IFA_F_NODAD so they are usable at once (the reference
    plugin does this unless `enabledad` is set).
    """
    packed = address.ip.packed
    prefixlen = address.network.prefixlen
    if address.version == 4:
        body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, index) \
            + rtnl_wire.attr(IFA_LOCAL, packed) + rtnl_wire.attr(IFA_ADDRESS, packed)
        if prefixlen < 31:
            body += rtnl_wire.attr(IFA_BROADCAST,
                                   address.network.broadcast_address.packed)
    else:
        body = _IFADDR.pack(socket.AF_INET6, prefixlen, IFA_F_NODAD if nodad else 0, 0,
                            index) + rtnl_wire.attr(IFA_ADDRESS, packed)
    try:
        rtnl_wire.request(ipr, RTM_NEWADDR, rtnl_wire.NLM_F_ACK | rtnl_wire.NLM_F_CREATE
                          | rtnl_wire.NLM_F_EXCL, body)
    except NetlinkError as e:
        if e.code == errno.EEXIST:
            return
        raise CNIError(f"cannot add address {address} to {ifname or index}",
                       f"{e.args[1] if len(e.args) > 1 else e}") from e


def delete_address(ipr: IPRoute, index: int, address: IPInterface, *, ifname: str = "") -> None:
    try:
        ipr.addr("del", index=index, address=str(address.ip),
                 prefixlen=address.network.prefixlen, family=_family(address.version))
    except NetlinkError as e:
        if e.code in (errno.EADDRNOTAVAIL, errno.ENODEV):
            return
        raise CNIError(f"cannot remove address {address} from {ifname or index}",
                       f"{e.args[1] if len(e.args) > 1 else e}") from e


def overlapping(existing: IPInterface, wanted: IPInterface) -> bool:
    """Same subnet in either direction (the reference plugin's forceAddress test)."""
    return existing.ip in wanted.network or wanted.ip in existing.network


# flags the kernel sets by itself (secondary, DAD progress, lifetimes, permanent): a
# restored address gets them again on its own
_KERNEL_FLAGS = 0x01 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80


@dataclass(frozen=True)
class AddressDetail:
    """An address as the kernel holds it: what `add_exact` needs to make it again."""

    address: IPInterface
    broadcast: str | None = None
    scope: int = 0
    flags: int = 0  # only those a caller sets (NODAD, NOPREFIXROUTE, …)
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"address": str(self.address), "broadcast": self.broadcast,
                "scope": self.scope, "flags": self.flags, "label": self.label}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AddressDetail:
        return cls(address=ipaddress.ip_interface(data["address"]),
                   broadcast=data.get("broadcast"), scope=int(data.get("scope") or 0),
                   flags=int(data.get("flags") or 0), label=data.get("label"))


def details(ipr: IPRoute, index: int, version: int | None = None) -> list[AddressDetail]:
    """The addresses of a link in the kernel's order (primaries before their secondaries)."""
    kwargs: dict[str, Any] = {"index": index}
    if version is not None:
        kwargs["family"] = _family(version)
    out: list[AddressDetail] = []
    for msg in ipr.get_addr(**kwargs):
        ip = msg.get_attr("IFA_ADDRESS")
        if msg["family"] == socket.AF_INET:
            ip = msg.get_attr("IFA_LOCAL") or ip
        flags = int(msg.get_attr("IFA_FLAGS") or msg["flags"])
        out.append(AddressDetail(
            address=ipaddress.ip_interface(f"{ip}/{msg['prefixlen']}"),
            broadcast=msg.get_attr("IFA_BROADCAST"), scope=int(msg["scope"]),
            flags=flags & ~_KERNEL_FLAGS, label=msg.get_attr("IFA_LABEL")))
    return out


def add_exact(ipr: IPRoute, index: int, detail: AddressDetail, *, ifname: str = "") -> None:
    """Add an address with exactly the broadcast (none if none), scope, flags and label
    given: a rollback must not give it a broadcast or NODAD it did not have."""
    address = detail.address
    kwargs: dict[str, Any] = {"index": index, "address": str(address.ip),
                              "prefixlen": address.network.prefixlen,
                              "family": _family(address.version), "scope": detail.scope}
    if detail.broadcast:
        kwargs["broadcast"] = detail.broadcast
    if detail.flags:
        kwargs["flags"] = detail.flags
    if detail.label:
        kwargs["label"] = detail.label
    try:
        ipr.addr("add", **kwargs)
    except NetlinkError as e:
        raise CNIError(f"cannot restore address {address} on {ifname or index}",
                       f"{e.args[1] if len(e.args) > 1 else e}") from e
