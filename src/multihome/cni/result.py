"""CNI results for every spec version, with conversion between them.

One in-memory shape (the 1.1.0 one) is read from and written to any version:
- 0.1.0/0.2.0 have `ip4`/`ip6` objects; writing to them keeps the first address of
  each family and the routes of that family.
- 0.3.x/0.4.0 have `interfaces`, `ips` with a `version`, `routes`.
- 1.0.0 drops `version`; 1.1.0 adds interface `mtu`/`socketPath`/`pciID` and route
  `mtu`/`advmss`/`priority`/`table`/`scope`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from multihome.cni import version as ver
from multihome.cni.errors import DecodingFailure, IncompatibleVersion

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _addr(value: Any, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(value)
    except (ValueError, TypeError) as e:
        raise DecodingFailure(f"invalid {what} {value!r} in result") from e


def _iface(value: Any, what: str) -> IPInterface:
    # a bare address would silently become a /32 or /128; results always carry a prefix
    if not isinstance(value, str) or "/" not in value:
        raise DecodingFailure(f"invalid {what} {value!r} in result: expected CIDR")
    try:
        return ipaddress.ip_interface(value)
    except (ValueError, TypeError) as e:
        raise DecodingFailure(f"invalid {what} {value!r} in result: expected CIDR") from e


def _net(value: Any, what: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(value, strict=False)
    except (ValueError, TypeError) as e:
        raise DecodingFailure(f"invalid {what} {value!r} in result: expected CIDR") from e


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodingFailure(f"invalid {what} in result: expected an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodingFailure(f"invalid {what} in result: expected a list")
    return value


@dataclass
class Interface:
    name: str
    mac: str = ""
    sandbox: str = ""
    mtu: int = 0
    socket_path: str = ""
    pci_id: str = ""

    def to_dict(self, v: str) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.mac:
            out["mac"] = self.mac
        if ver.at_least(v, "1.1.0") and self.mtu:
            out["mtu"] = self.mtu
        if self.sandbox:
            out["sandbox"] = self.sandbox
        if ver.at_least(v, "1.1.0"):
            if self.socket_path:
                out["socketPath"] = self.socket_path
            if self.pci_id:
                out["pciID"] = self.pci_id
        return out

    @classmethod
    def from_dict(cls, d: Any) -> Interface:
        d = _obj(d, "interface")
        name = d.get("name")
        if not isinstance(name, str):
            raise DecodingFailure("invalid interface in result: missing name")
        mtu = d.get("mtu", 0)
        return cls(
            name=name,
            mac=str(d.get("mac", "") or ""),
            sandbox=str(d.get("sandbox", "") or ""),
            mtu=mtu if isinstance(mtu, int) else 0,
            socket_path=str(d.get("socketPath", "") or ""),
            pci_id=str(d.get("pciID", "") or ""),
        )


@dataclass
class IPConfig:
    address: IPInterface
    gateway: IPAddress | None = None
    interface: int | None = None

    @property
    def family(self) -> int:
        return self.address.version

    def to_dict(self, v: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not ver.at_least(v, "1.0.0"):
            out["version"] = str(self.family)
        if self.interface is not None:
            out["interface"] = self.interface
        out["address"] = str(self.address)
        if self.gateway is not None:
            out["gateway"] = str(self.gateway)
        return out

    @classmethod
    def from_dict(cls, d: Any) -> IPConfig:
        d = _obj(d, "ips entry")
        address = _iface(d.get("address"), "ips address")
        gw = d.get("gateway")
        idx = d.get("interface")
        if idx is not None and (not isinstance(idx, int) or isinstance(idx, bool) or idx < 0):
            raise DecodingFailure(f"invalid interface index {idx!r} in result")
        return cls(address=address, gateway=_addr(gw, "gateway") if gw else None, interface=idx)


@dataclass
class Route:
    dst: IPNetwork
    gw: IPAddress | None = None
    mtu: int = 0
    advmss: int = 0
    priority: int = 0
    table: int | None = None
    scope: int | None = None

    def to_dict(self, v: str) -> dict[str, Any]:
        out: dict[str, Any] = {"dst": str(self.dst)}
        if self.gw is not None:
            out["gw"] = str(self.gw)
        if ver.at_least(v, "1.1.0"):
            for key, value in (("mtu", self.mtu), ("advmss", self.advmss),
                               ("priority", self.priority)):
                if value:
                    out[key] = value
            if self.table is not None:
                out["table"] = self.table
            if self.scope is not None:
                out["scope"] = self.scope
        return out

    @classmethod
    def from_dict(cls, d: Any) -> Route:
        d = _obj(d, "route")
        gw = d.get("gw")

        def _int(key: str) -> int:
            value = d.get(key, 0)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        table = d.get("table")
        scope = d.get("scope")
        return cls(
            dst=_net(d.get("dst"), "route dst"),
            gw=_addr(gw, "route gw") if gw else None,
            mtu=_int("mtu"),
            advmss=_int("advmss"),
            priority=_int("priority"),
            table=table if isinstance(table, int) else None,
            scope=scope if isinstance(scope, int) else None,
        )


@dataclass
class DNS:
    nameservers: list[str] = field(default_factory=list)
    domain: str = ""
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out

    @classmethod
    def from_dict(cls, d: Any) -> DNS:
        if d is None:
            return cls()
        d = _obj(d, "dns")

        def strs(key: str) -> list[str]:
            return [str(x) for x in _list(d.get(key), f"dns {key}")]

        return cls(strs("nameservers"), str(d.get("domain", "") or ""), strs("search"),
                   strs("options"))

    def empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)


@dataclass
class Result:
    """A plugin's result, held in the 1.1.0 shape whatever version it came in."""

    cni_version: str = ver.LATEST
    interfaces: list[Interface] = field(default_factory=list)
    ips: list[IPConfig] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    dns: DNS = field(default_factory=DNS)

    # -- reading -----------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any) -> Result:
        data = _obj(data, "result")
        v = data.get("cniVersion", "0.1.0") or "0.1.0"
        if not isinstance(v, str):
            raise DecodingFailure("invalid cniVersion in result")
        ver.require_supported(v)
        if not ver.at_least(v, "0.3.0"):
            return cls._from_legacy(v, data)
        result = cls(
            cni_version=v,
            interfaces=[Interface.from_dict(i)
                        for i in _list(data.get("interfaces"), "interfaces")],
            ips=[IPConfig.from_dict(i) for i in _list(data.get("ips"), "ips")],
            routes=[Route.from_dict(r) for r in _list(data.get("routes"), "routes")],
            dns=DNS.from_dict(data.get("dns")),
        )
        for ip in result.ips:
            if ip.interface is not None and ip.interface >= len(result.interfaces):
                raise DecodingFailure(
                    f"invalid result: ips entry {ip.address} names interface {ip.interface} "
                    f"but there are only {len(result.interfaces)} interfaces"
                )
        return result

    @classmethod
    def _from_legacy(cls, v: str, data: dict[str, Any]) -> Result:
        result = cls(cni_version=v, dns=DNS.from_dict(data.get("dns")))
        for key in ("ip4", "ip6"):
            block = data.get(key)
            if block is None:
                continue
            block = _obj(block, key)
            gw = block.get("gateway")
            result.ips.append(IPConfig(address=_iface(block.get("ip"), f"{key}.ip"),
                                       gateway=_addr(gw, f"{key}.gateway") if gw else None))
            result.routes.extend(Route.from_dict(r) for r in _list(block.get("routes"),
                                                                   f"{key}.routes"))
        return result

    # -- writing -----------------------------------------------------------
    def to_dict(self, v: str | None = None) -> dict[str, Any]:
        """Render for version `v` (default: the version it was made for)."""
        v = v or self.cni_version
        try:
            ver.require_supported(v)
        except IncompatibleVersion as e:
            raise IncompatibleVersion(f"cannot convert result to version {v!r}: {e.msg}") from e
        if not ver.at_least(v, "0.3.0"):
            return self._to_legacy(v)
        out: dict[str, Any] = {"cniVersion": v}
        if self.interfaces:
            out["interfaces"] = [i.to_dict(v) for i in self.interfaces]
        if self.ips:
            out["ips"] = [ip.to_dict(v) for ip in self.ips]
        if self.routes:
            out["routes"] = [r.to_dict(v) for r in self.routes]
        out["dns"] = self.dns.to_dict()
        return out

    def _to_legacy(self, v: str) -> dict[str, Any]:
        if not self.ips:
            # 0.1.0/0.2.0 results are nothing but ip4/ip6; the Go types refuse this too
            raise IncompatibleVersion(
                f"cannot convert result to version {v}: it has no IP address, and "
                f"{v} results can only hold addresses (use cniVersion 0.3.0 or later)"
            )
        out: dict[str, Any] = {"cniVersion": v}
        for family, key in ((4, "ip4"), (6, "ip6")):
            first = next((ip for ip in self.ips if ip.family == family), None)
            if first is None:
                continue
            block: dict[str, Any] = {"ip": str(first.address)}
            if first.gateway is not None:
                block["gateway"] = str(first.gateway)
            routes = [r.to_dict(v) for r in self.routes if r.dst.version == family]
            if routes:
                block["routes"] = routes
            out[key] = block
        out["dns"] = self.dns.to_dict()
        return out

    def convert(self, v: str) -> Result:
        """A copy that will render as version `v` (raises code 1 if impossible)."""
        return Result.from_dict(self.to_dict(v))
