"""Address ranges and range sets of host-local, with the reference plugin's rules.

A *range* is a subnet with an inclusive [start, end] window and a gateway; a *range
set* is a list of ranges of one family from which one address is handed out. The
defaults, the validation and the round-robin order follow containernetworking's
host-local so that both plugins pick the same address from the same disk state.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from multihome.cni.errors import InvalidConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(value: Any, what: str) -> IPAddress:
    """A plain address; a CIDR suffix is tolerated and dropped (runtimeConfig.ips carries one)."""
    if not isinstance(value, str):
        raise InvalidConfig(f"{what} must be a string holding an IP address, got {value!r}")
    text = value.strip().split("/", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError as e:
        raise InvalidConfig(f"{what} {value!r} is not a valid IP address") from e


def parse_subnet(value: Any, what: str) -> IPNetwork:
    if not isinstance(value, str):
        raise InvalidConfig(f"{what} must be a string holding a CIDR, got {value!r}")
    try:
        iface = ipaddress.ip_interface(value.strip())
    except ValueError as e:
        raise InvalidConfig(f"{what} {value!r} is not a valid CIDR") from e
    if "/" not in value:
        raise InvalidConfig(f"{what} {value!r} is not a valid CIDR: the prefix length is missing")
    if iface.ip != iface.network.network_address:
        raise InvalidConfig(
            f"{what} {value!r} has host bits set: the network address for a /"
            f"{iface.network.prefixlen} is {iface.network.network_address}"
        )
    return iface.network


@dataclass(frozen=True)
class Range:
    subnet: IPNetwork
    start: IPAddress
    end: IPAddress
    gateway: IPAddress

    @property
    def family(self) -> int:
        return self.subnet.version

    def contains(self, ip: IPAddress) -> bool:
        """True if `ip` is inside the allocation window (the reference's Range.Contains)."""
        return (ip.version == self.family and ip in self.subnet
                and int(self.start) <= int(ip) <= int(self.end))

    def reserved(self, ip: IPAddress) -> bool:
        """Addresses never handed out: the gateway, and the IPv4 network/broadcast address."""
        if ip == self.gateway:
            return True
        return self.family == 4 and ip in (self.subnet.network_address,
                                           self.subnet.broadcast_address)

    def overlaps(self, other: Range) -> bool:
        return (self.family == other.family
                and int(self.start) <= int(other.end) and int(other.start) <= int(self.end))

    def __str__(self) -> str:
        default_start, default_end = default_window(self.subnet)
        if (self.start, self.end) == (default_start, default_end):
            return str(self.subnet)
        return f"{self.subnet} ({self.start}-{self.end})"


def default_window(subnet: IPNetwork) -> tuple[IPAddress, IPAddress]:
    """.1 up to the last address, minus the broadcast address for IPv4 (as the reference)."""
    first = subnet.network_address + 1
    last = subnet.broadcast_address
    if subnet.version == 4:
        last = last - 1
    return first, last


def parse_range(raw: Any, where: str) -> Range:
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{where} must be an object with a 'subnet' key, got {raw!r}")
    if "subnet" not in raw:
        raise InvalidConfig(f"{where} is missing the 'subnet' key")
    subnet = parse_subnet(raw["subnet"], f"{where} 'subnet'")
    # Ranges of fewer than 4 addresses (v4 /31, /32; v6 /127, /128) cannot hold a
    # gateway and a host, and the reference rejects them too.
    if subnet.prefixlen > subnet.max_prefixlen - 2:
        raise InvalidConfig(f"{where} 'subnet' {subnet} is too small to allocate from")
    default_start, default_end = default_window(subnet)

    def bound(key: str, default: IPAddress) -> IPAddress:
        value = raw.get(key)
        if value is None or value == "":
            return default
        ip = parse_ip(value, f"{where} '{key}'")
        if ip.version != subnet.version:
            raise InvalidConfig(f"{where} '{key}' {ip} is not the same IP family as {subnet}")
        if ip not in subnet:
            raise InvalidConfig(f"{where} '{key}' {ip} is not inside subnet {subnet}")
        return ip

    start = bound("rangeStart", default_start)
    end = bound("rangeEnd", default_end)
    if int(start) > int(end):
        raise InvalidConfig(f"{where} 'rangeStart' {start} is after 'rangeEnd' {end}")
    gateway = bound("gateway", subnet.network_address + 1)
    r = Range(subnet, start, end, gateway)
    # A window holding only the gateway/network/broadcast could never allocate; say so
    # now rather than as "no addresses available" on every ADD.
    window = int(end) - int(start) + 1
    if window <= 3 and all(r.reserved(type(start)(v))
                           for v in range(int(start), int(end) + 1)):
        raise InvalidConfig(f"{where} window {start}-{end} holds no allocatable address "
                            "(only the gateway, network or broadcast address)")
    return r


@dataclass(frozen=True)
class RangeSet:
    ranges: tuple[Range, ...]

    @property
    def family(self) -> int:
        return self.ranges[0].family

    def range_for(self, ip: IPAddress) -> Range | None:
        return next((r for r in self.ranges if r.contains(ip)), None)

    def contains(self, ip: IPAddress) -> bool:
        return self.range_for(ip) is not None

    def overlaps(self, other: RangeSet) -> bool:
        return any(a.overlaps(b) for a in self.ranges for b in other.ranges)

    def candidates(self, last_reserved: IPAddress | None) -> Iterator[tuple[IPAddress, Range]]:
        """Every allocatable address once, starting after `last_reserved` (round-robin).

        Same order as the reference's RangeIter: if the last reserved address lies in
        this set, continue right after it (wrapping across ranges and back to the
        start); otherwise begin at the first range's start.
        """
        n = len(self.ranges)
        first_idx, first_ip = 0, self.ranges[0].start
        if last_reserved is not None:
            for i, r in enumerate(self.ranges):
                if r.contains(last_reserved):
                    if last_reserved == r.end:
                        first_idx = (i + 1) % n
                        first_ip = self.ranges[first_idx].start
                    else:
                        first_idx, first_ip = i, last_reserved + 1
                    break
        # Walk from first_ip to the end of its range, the other ranges in order, then the
        # head of the first range up to (excluding) first_ip.
        for step in range(n + 1):
            idx = (first_idx + step) % n
            r = self.ranges[idx]
            lo = first_ip if step == 0 else r.start
            hi = r.end if step < n else first_ip - 1
            if step == n and first_ip == r.start:
                break
            for value in range(int(lo), int(hi) + 1):
                ip: IPAddress = (ipaddress.IPv4Address(value) if r.family == 4
                                 else ipaddress.IPv6Address(value))
                if not r.reserved(ip):
                    yield ip, r

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)


def parse_range_set(raw: Any, where: str) -> RangeSet:
    if not isinstance(raw, list):
        raise InvalidConfig(f"{where} must be a list of ranges, got {raw!r}")
    if not raw:
        raise InvalidConfig(f"{where} is empty: give at least one range with a 'subnet'")
    ranges = tuple(parse_range(r, f"{where} range {i}") for i, r in enumerate(raw))
    if len({r.family for r in ranges}) > 1:
        raise InvalidConfig(f"{where} mixes IPv4 and IPv6 ranges; use one range set per family")
    for i, a in enumerate(ranges):
        for j in range(i + 1, len(ranges)):
            if a.overlaps(ranges[j]):
                raise InvalidConfig(
                    f"{where}: ranges {i} ({a}) and {j} ({ranges[j]}) overlap"
                )
    return RangeSet(ranges)


def check_no_overlap(sets: list[RangeSet]) -> None:
    for i, a in enumerate(sets):
        for j in range(i + 1, len(sets)):
            if a.overlaps(sets[j]):
                raise InvalidConfig(f"range set {i} ({a}) overlaps with range set {j} "
                                    f"({sets[j]})")
