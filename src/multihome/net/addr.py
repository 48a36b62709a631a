"""Addresses on links (IPv4 and IPv6), with DAD control for IPv6."""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from multihome.cni.errors import CNIError

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

IFA_F_NODAD = 0x02


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def list_addresses(ipr: IPRoute, index: int, version: int | None = None) -> list[IPInterface]:
    """Global and link addresses of a link, as interfaces (address/prefix)."""
    kwargs: dict[str, Any] = {"index": index}
    if version is not None:
        kwargs["family"] = _family(version)
    out: list[IPInterface] = []
    for msg in ipr.get_addr(**kwargs):
        addr = msg.get_attr("IFA_ADDRESS")
        if msg["family"] == socket.AF_INET:
            addr = msg.get_attr("IFA_LOCAL") or addr
        out.append(ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}"))
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
    kwargs: dict[str, Any] = {
        "index": index,
        "address": str(address.ip),
        "prefixlen": address.network.prefixlen,
        "family": _family(address.version),
    }
    if address.version == 4:
        kwargs["broadcast"] = str(address.network.broadcast_address) \
            if address.network.prefixlen < 31 else None
        if kwargs["broadcast"] is None:
            del kwargs["broadcast"]
    elif nodad:
        kwargs["flags"] = IFA_F_NODAD
    try:
        ipr.addr("add", **kwargs)
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
