"""The configuration of the cluster-wide IPAM, in whereabouts' own keys.

A NAD written for whereabouts works unchanged: `range` (a CIDR, a CIDR with host bits
set meaning "start here", or `first-last/prefix`), `range_start`, `range_end`, `exclude`
(CIDRs or addresses), `ipRanges` (several ranges, IPv4 and IPv6, each with the same keys),
`gateway`, `network_name`, `enable_overlapping_ranges` (default true, as in whereabouts),
`node_slice_size` ("/28" or "28"), `routes`, `dns`. Keys that only make sense for
whereabouts' own process (`kubernetes.kubeconfig`, `datastore`, `etcd_*`, `log_*`,
`leader_*`, `configuration_path`, `reconciler_cron_expression`, `sleep_for_race`) are
accepted and ignored: where pools live is the node's configuration, never the NAD's (a
NAD naming a kubeconfig must not make the root daemon read that file).

Every malformed value becomes InvalidConfig (code 7) with a sentence naming the key.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from multihome.cni.errors import InvalidConfig
from multihome.cni.result import DNS, Route
from multihome.cni.types import NetConf
from multihome.ipam import config as cfgmod
from multihome.ipam.ranges import IPAddress, IPNetwork, default_window, parse_ip

TYPES: tuple[str, ...] = ("whereabouts", "multihome-ipam")
# A Kubernetes object name is at most 253 characters; the pool name embeds the network
# name, so a longer one could never be stored.
MAX_NETWORK_NAME = 200
# Bounds the work of one ADD: each range is one pool write (two with overlapping ranges).
MAX_RANGES = 16
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
MAX_EXCLUDES = 1024
# A NodeSlicePool lists every slice; 4096 of them keep it far below etcd's object limit.
MAX_SLICE_BITS = 12


@dataclass(frozen=True)
class PoolRange:
    """One range to allocate from: the CIDR the pool is named after, the inclusive
    window inside it, and what is never handed out."""

    subnet: IPNetwork
    start: IPAddress
    end: IPAddress
    exclude: tuple[IPNetwork, ...] = ()
    gateway: IPAddress | None = None

    @property
    def family(self) -> int:
        return self.subnet.version

    @property
    def cidr(self) -> str:
        return str(self.subnet)

    def excluded(self, ip: IPAddress) -> IPNetwork | None:
        """The exclude entry holding `ip`, if any."""
        return next((n for n in self.exclude if ip in n), None)

    def usable(self, ip: IPAddress) -> bool:
        return (ip.version == self.family and int(self.start) <= int(ip) <= int(self.end)
                and ip != self.gateway and self.excluded(ip) is None)

    def size(self) -> int:
        return int(self.end) - int(self.start) + 1


@dataclass
class WhereaboutsConfig:
    name: str
    cni_version: str
    ranges: list[PoolRange]
    network_name: str = ""
    overlapping: bool = True
    node_slice_prefix: int | None = None
    routes: list[Route] = field(default_factory=list)
    dns: DNS = field(default_factory=DNS)


def _address(value: Any, where: str, subnet: IPNetwork) -> IPAddress:
    ip = parse_ip(value, where)
    if ip.version != subnet.version:
        raise InvalidConfig(f"{where} {ip} is not the same IP family as {subnet}")
    if ip not in subnet:
        raise InvalidConfig(f"{where} {ip} is not inside the range {subnet}")
    return ip


def _network(text: str, where: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        return ipaddress.ip_interface(text.strip())
    except ValueError as e:
        raise InvalidConfig(f"{where} {text!r} is not a valid CIDR") from e


def _parse_exclude(raw: Any, where: str, subnet: IPNetwork) -> tuple[IPNetwork, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise InvalidConfig(f"{where} must be a list of CIDR strings, got {raw!r}")
    if len(raw) > MAX_EXCLUDES:
        raise InvalidConfig(f"{where} has {len(raw)} entries; at most {MAX_EXCLUDES}")
    out: list[IPNetwork] = []
    for i, text in enumerate(raw):
        # whereabouts takes CIDRs; a bare address is read as a single-address CIDR
        iface = _network(text, f"{where} entry {i}")
        if iface.version != subnet.version:
            raise InvalidConfig(f"{where} entry {i} {text!r} is not the same IP family as "
                                f"{subnet}")
        out.append(iface.network)
    return tuple(out)


def parse_pool_range(raw: dict[str, Any], where: str, gateway: Any = None) -> PoolRange:
    """One range from `range` and its companions (`range_start`, `range_end`, `exclude`)."""
    text = raw.get("range")
    if not isinstance(text, str) or not text.strip():
        raise InvalidConfig(f"{where} needs 'range' as a CIDR string (e.g. 10.1.0.0/24), "
                            f"got {text!r}")
    text = text.strip()
    first_text, dash, rest = text.partition("-")
    if dash:
        # `first-last/prefix`: both bounds inside the network of `first/prefix`
        last_text, slash, prefix = rest.partition("/")
        if not slash:
            raise InvalidConfig(f"{where} 'range' {text!r} needs a prefix length, as in "
                                "10.1.0.10-10.1.0.50/24")
        iface = _network(f"{first_text}/{prefix}", f"{where} 'range'")
        subnet = iface.network
        start_default = _address(first_text, f"{where} 'range' first address", subnet)
        end_default = _address(last_text, f"{where} 'range' last address", subnet)
    else:
        if "/" not in text:
            raise InvalidConfig(f"{where} 'range' {text!r} is missing a prefix length")
        iface = _network(text, f"{where} 'range'")
        subnet = iface.network
        start_default, end_default = default_window(subnet)
        if iface.ip != subnet.network_address:
            start_default = iface.ip  # whereabouts: host bits mean "allocate from here"
    if subnet.prefixlen > subnet.max_prefixlen - 2 and not dash:
        raise InvalidConfig(f"{where} 'range' {subnet} is too small to allocate from")

    def bound(key: str, default: IPAddress) -> IPAddress:
        value = raw.get(key)
        if value is None or value == "":
            return default
        return _address(value, f"{where} '{key}'", subnet)

    start = bound("range_start", start_default)
    end = bound("range_end", end_default)
    if int(start) > int(end):
        raise InvalidConfig(f"{where}: the first address {start} is after the last {end}")
    # never the network address (nor, for IPv4, the broadcast address) of the range
    lowest, highest = default_window(subnet)
    if subnet.prefixlen < subnet.max_prefixlen - 1:
        start = max(start, lowest, key=int)
        end = min(end, highest, key=int)
    gw: IPAddress | None = None
    if gateway not in (None, ""):
        gw = parse_ip(gateway, f"{where} 'gateway'")
        if gw.version != subnet.version or gw not in subnet:
            gw = None  # a gateway of the other family's range (ipRanges share one key)
    r = PoolRange(subnet, start, end, _parse_exclude(raw.get("exclude"),
                                                      f"{where} 'exclude'", subnet), gw)
    if not _has_usable(r):
        raise InvalidConfig(f"{where}: every address of {start}-{end} is excluded or the "
                            "gateway; nothing could ever be allocated")
    return r


def _has_usable(r: PoolRange) -> bool:
    """Whether any address of the window is neither excluded nor the gateway, in
    O(excludes) steps whatever the window's size (an IPv6 /64 has 2^64 addresses)."""
    value, end = int(r.start), int(r.end)
    cls = ipaddress.IPv4Address if r.family == 4 else ipaddress.IPv6Address
    for _ in range(len(r.exclude) + 2):
        if value > end:
            return False
        ip = cls(value)
        net = r.excluded(ip)
        if net is not None:
            value = int(net.broadcast_address) + 1
        elif ip == r.gateway:
            value += 1
        else:
            return True
    return value <= end


def _bool(ipam: dict[str, Any], key: str, default: bool) -> bool:
    value = ipam.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidConfig(f"ipam '{key}' must be true or false, got {value!r}")
    return value


def _slice_prefix(ipam: dict[str, Any], ranges: list[PoolRange]) -> int | None:
    value = ipam.get("node_slice_size")
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip().removeprefix("/")
    else:
        raise InvalidConfig(f"ipam 'node_slice_size' must be a prefix length like \"/28\", "
                            f"got {value!r}")
    if not text.isdigit():
        raise InvalidConfig(f"ipam 'node_slice_size' {value!r} is not a prefix length "
                            "(write it as \"/28\" or \"28\")")
    prefix = int(text)
    if len(ranges) != 1:
        raise InvalidConfig("ipam 'node_slice_size' works with one range; 'ipRanges' "
                            "with several ranges cannot be sliced per node")
    subnet = ranges[0].subnet
    if not subnet.prefixlen < prefix <= subnet.max_prefixlen - 2:
        raise InvalidConfig(f"ipam 'node_slice_size' /{prefix} must be longer than the "
                            f"range's /{subnet.prefixlen} and leave room for hosts "
                            f"(at most /{subnet.max_prefixlen - 2})")
    if prefix - subnet.prefixlen > MAX_SLICE_BITS:
        raise InvalidConfig(f"ipam 'node_slice_size' /{prefix} cuts {subnet} into more "
                            f"than {2 ** MAX_SLICE_BITS} slices; use a shorter prefix")
    return prefix


def _network_name(ipam: dict[str, Any]) -> str:
    name = cfgmod.string_key(ipam, "network_name")
    if len(name) > MAX_NETWORK_NAME:
        raise InvalidConfig(f"ipam 'network_name' is longer than {MAX_NETWORK_NAME} "
                            "characters")
    if any(c not in _NAME_CHARS for c in name):
        raise InvalidConfig(f"ipam 'network_name' {name!r} must be lower-case letters, "
                            "digits, '-' and '.' (it becomes part of an object name)")
    return name


def load(conf: NetConf) -> WhereaboutsConfig:
    ipam = cfgmod.ipam_section(conf)
    gateway = ipam.get("gateway")
    if gateway not in (None, ""):
        parse_ip(gateway, "ipam 'gateway'")
    ranges: list[PoolRange] = []
    if ipam.get("range") not in (None, ""):
        ranges.append(parse_pool_range(ipam, "ipam", gateway))
    extra = ipam.get("ipRanges")
    if extra is not None:
        if not isinstance(extra, list) or not all(isinstance(r, dict) for r in extra):
            raise InvalidConfig("ipam 'ipRanges' must be a list of objects, each with a "
                                "'range'")
        ranges += [parse_pool_range(r, f"ipam 'ipRanges' entry {i}", gateway)
                   for i, r in enumerate(extra)]
    if not ranges:
        raise InvalidConfig("ipam has no range: set 'range' (e.g. 10.1.0.0/24) or "
                            "'ipRanges'")
    if len(ranges) > MAX_RANGES:
        raise InvalidConfig(f"ipam has {len(ranges)} ranges; at most {MAX_RANGES}")
    for i, a in enumerate(ranges):
        for j in range(i + 1, len(ranges)):
            b = ranges[j]
            if a.family == b.family and int(a.start) <= int(b.end) \
                    and int(b.start) <= int(a.end):
                raise InvalidConfig(f"ipam ranges {a.cidr} and {b.cidr} overlap: one "
                                    "attachment would get two addresses of one network")
    cfgmod.check_per_family_limit(conf.cni_version, [r.family for r in ranges])
    for key in ("kubernetes", "dns"):
        if ipam.get(key) is not None and not isinstance(ipam.get(key), dict):
            raise InvalidConfig(f"ipam '{key}' must be an object")
    return WhereaboutsConfig(
        name=conf.name,
        cni_version=conf.cni_version,
        ranges=ranges,
        network_name=_network_name(ipam),
        overlapping=_bool(ipam, "enable_overlapping_ranges", True),
        node_slice_prefix=_slice_prefix(ipam, ranges),
        routes=cfgmod.parse_routes(ipam.get("routes")),
        dns=cfgmod.parse_dns(ipam.get("dns")),
    )
