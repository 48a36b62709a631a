"""Node network state as typed models, one class per interface type.

A desired state is *partial*: only what it names is changed and compared, so every field
is optional (None: not given). The nmstate mapping is turned into these models once
(`from_nmstate`, after schema.validate for input from users) and turned back with
`to_nmstate`, in nmstate's spelling and key order, for `node show` and checkpoints.
Comparing lives with the data (`differences`), so apply, verify and checkpoint share one
normalisation. Adding an interface type: a subclass here (registered in TYPES), its
section in schema.TYPE_SECTIONS, how to create it in apply and how to read it in current.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from multihome.net import bond

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def trunk_ids(vlan: Mapping[str, Any]) -> list[int]:
    """Every VLAN id a trunk port carries (nmstate `trunk-tags`), ranges expanded."""
    out: list[int] = []
    for tag in vlan.get("trunk-tags") or []:
        if "id" in tag:
            out.append(int(tag["id"]))
        else:
            rng = tag["id-range"]
            out += range(int(rng["min"]), int(rng["max"]) + 1)
    return sorted(set(out))


# -- addresses ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IpConfig:
    """An `ipv4`/`ipv6` section; `addresses` None when the section does not list any."""

    enabled: bool | None = None
    addresses: tuple[IPInterface, ...] | None = None

    @classmethod
    def from_nmstate(cls, section: Mapping[str, Any] | None) -> IpConfig | None:
        if not section:
            return None
        addresses = None
        if "address" in section:
            addresses = tuple(ipaddress.ip_interface(f"{a['ip']}/{a['prefix-length']}")
                              for a in section["address"] or [])
        return cls(enabled=section.get("enabled"), addresses=addresses)

    def wanted(self) -> set[IPInterface] | None:
        """The exact address set this section asks for; None: it does not say."""
        if self.enabled is False:
            return set()
        return None if self.addresses is None else set(self.addresses)

    def to_nmstate(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.enabled is not None:
            out["enabled"] = self.enabled
        if self.addresses is not None:
            out["address"] = [{"ip": str(a.ip), "prefix-length": a.network.prefixlen}
                              for a in self.addresses]
        return out


# -- bridge ports -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PortVlan:
    """A bridge port's VLANs: access (one untagged `tag`) or trunk (tagged ids, optionally
    a native `tag`). Two spellings of the same VLANs compare equal."""

    mode: str
    tag: int | None = None
    trunk: tuple[int, ...] = ()

    @classmethod
    def from_nmstate(cls, vlan: Mapping[str, Any] | None) -> PortVlan | None:
        if not vlan:
            return None
        mode = vlan.get("mode", "access" if "tag" in vlan else "trunk")
        if mode == "access":
            return cls(mode="access", tag=int(vlan["tag"]))
        native = int(vlan["tag"]) if vlan.get("enable-native") else None
        return cls(mode="trunk", tag=native, trunk=tuple(trunk_ids(vlan)))

    def to_nmstate(self) -> dict[str, Any]:
        if self.mode == "access":
            return {"mode": "access", "tag": self.tag}
        out: dict[str, Any] = {"mode": "trunk", "trunk-tags": [{"id": v} for v in self.trunk]}
        if self.tag is not None:
            out["enable-native"] = True
            out["tag"] = self.tag
        return out


@dataclass(frozen=True, kw_only=True)
class Port:
    name: str
    vlan: PortVlan | None = None

    def to_nmstate(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.vlan is not None:
            out["vlan"] = self.vlan.to_nmstate()
        return out


# -- interfaces ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Interface:
    """What every interface type has. Used as is for types multihome cannot create
    (ethernet, unknown) and for an interface named without a type (change what exists)."""

    TYPE: ClassVar[str | None] = None
    SECTION: ClassVar[str | None] = None  # the nmstate key of the type's own section
    VIRTUAL: ClassVar[bool] = False  # multihome creates it (and deletes it on rollback)
    STACKED: ClassVar[bool] = False  # needs another link to exist first
    CONTROLLER: ClassVar[bool] = False  # has ports (bridge, bond, vrf)

    name: str
    type: str | None = None
    state: str | None = None  # up, down, absent
    mtu: int | None = None
    mac: str | None = None  # upper case
    ipv4: IpConfig | None = None
    ipv6: IpConfig | None = None
    ethtool: Mapping[str, bool] | None = None  # ethtool.feature: name -> on

    @property
    def absent(self) -> bool:
        return self.state == "absent"

    def section(self) -> dict[str, Any] | None:
        """The type's own section in nmstate's spelling (None: none given)."""
        return None

    def linked_names(self) -> set[str]:
        """Other interfaces this one names (bridge ports, a veth peer)."""
        return set()

    def port_names(self) -> tuple[str, ...] | None:
        """A controller's ports (None: not named, or not a controller)."""
        return None

    @classmethod
    def section_fields(cls, sec: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments of this type that come from its nmstate section."""
        return {}

    def to_nmstate(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for key, value in (("type", self.type), ("state", self.state), ("mtu", self.mtu),
                           ("mac-address", self.mac)):
            if value is not None:
                out[key] = value
        section = self.section()
        if self.SECTION is not None and section is not None:
            out[self.SECTION] = section
        for family, ip in (("ipv4", self.ipv4), ("ipv6", self.ipv6)):
            if ip is not None:
                out[family] = ip.to_nmstate()
        if self.ethtool is not None:
            out["ethtool"] = {"feature": dict(self.ethtool)}
        return out

    def differences(self, have: Interface | None) -> list[str]:
        """What of this (wanted) interface `have` does not show (empty: contained)."""
        name = self.name
        if self.absent:
            return [f"{name} still exists"] if have is not None and have.VIRTUAL else []
        if have is None:
            return [f"{name} does not exist"]
        out: list[str] = []
        if self.type not in (None, "unknown", have.type):
            out.append(f"{name} is a {have.type}, not a {self.type}")
        for key, want, got in (("state", self.state, have.state), ("mtu", self.mtu, have.mtu),
                               ("mac-address", self.mac, have.mac)):
            if want is not None and want != got:
                out.append(f"{name}.{key} is {got}, wanted {want}")
        for family, ip, have_ip in (("ipv4", self.ipv4, have.ipv4),
                                    ("ipv6", self.ipv6, have.ipv6)):
            wanted = ip.wanted() if ip is not None else None
            if wanted is None:
                continue
            got_set = have_ip.wanted() if have_ip is not None else set()
            got_names = sorted(str(a) for a in got_set or ())
            if got_names != sorted(str(a) for a in wanted):
                out.append(f"{name}.{family} addresses are {got_names}, "
                           f"wanted {sorted(str(a) for a in wanted)}")
        for feature, on in (self.ethtool or {}).items():
            now = (have.ethtool or {}).get(feature)
            if now is None:
                out.append(f"{name}.ethtool.feature.{feature} is not offered")
            elif now != on:
                out.append(f"{name}.ethtool.feature.{feature} is {now}, wanted {on}")
        return out + self.section_differences(have)

    def section_differences(self, have: Interface) -> list[str]:
        """Every key of the type's section that is given must match (the plain case)."""
        want = self.section() or {}
        got = have.section() or {} if have.SECTION == self.SECTION else {}
        return [f"{self.name}.{self.SECTION}.{key} is {got.get(key)}, wanted {value}"
                for key, value in want.items() if got.get(key) != value]


@dataclass(frozen=True, kw_only=True)
class LinuxBridge(Interface):
    TYPE = "linux-bridge"
    SECTION = "bridge"
    VIRTUAL = True
    CONTROLLER = True

    stp: bool | None = None
    ports: tuple[Port, ...] | None = None  # None: the ports are not named

    @classmethod
    def section_fields(cls, sec: Mapping[str, Any]) -> dict[str, Any]:
        stp = ((sec.get("options") or {}).get("stp") or {}).get("enabled")
        ports = None
        if "port" in sec:
            ports = tuple(Port(name=p["name"], vlan=PortVlan.from_nmstate(p.get("vlan")))
                          for p in sec["port"] or [])
        return {"stp": stp, "ports": ports}

    def port_names(self) -> tuple[str, ...] | None:
        return None if self.ports is None else tuple(p.name for p in self.ports)

    def section(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        if self.stp is not None:
            out["options"] = {"stp": {"enabled": self.stp}}
        if self.ports is not None:
            out["port"] = [p.to_nmstate() for p in self.ports]
        return out

    def linked_names(self) -> set[str]:
        return {p.name for p in self.ports or ()}

    def section_differences(self, have: Interface) -> list[str]:
        name = self.name
        got = have if isinstance(have, LinuxBridge) else LinuxBridge(name=have.name)
        out: list[str] = []
        if self.stp is not None and self.stp != got.stp:
            out.append(f"{name}.bridge.options.stp.enabled is not {self.stp}")
        if self.ports is None:
            return out
        have_ports = {p.name: p for p in got.ports or ()}
        want_ports = {p.name: p for p in self.ports}
        if set(have_ports) != set(want_ports):
            out.append(f"{name}.bridge.port is {sorted(have_ports)}, wanted {sorted(want_ports)}")
        for pname, port in want_ports.items():
            if port.vlan is not None and pname in have_ports \
                    and port.vlan != have_ports[pname].vlan:
                had = have_ports[pname].vlan
                out.append(f"{name}.bridge.port {pname} vlan is "
                           f"{had.to_nmstate() if had else None}, "
                           f"wanted {port.vlan.to_nmstate()}")
        return out


@dataclass(frozen=True, kw_only=True)
class Vlan(Interface):
    TYPE = "vlan"
    SECTION = "vlan"
    VIRTUAL = True
    STACKED = True

    base_iface: str | None = None
    vlan_id: int | None = None

    @classmethod
    def section_fields(cls, sec: Mapping[str, Any]) -> dict[str, Any]:
        vid = sec.get("id")
        return {"base_iface": sec.get("base-iface"), "vlan_id": None if vid is None else int(vid)}

    def section(self) -> dict[str, Any] | None:
        return _given({"base-iface": self.base_iface, "id": self.vlan_id})


@dataclass(frozen=True, kw_only=True)
class MacVlan(Interface):
    TYPE = "mac-vlan"
    SECTION = "mac-vlan"
    VIRTUAL = True
    STACKED = True

    base_iface: str | None = None
    mode: str | None = None
    promiscuous: bool | None = None  # False: made with nopromisc (matters for passthru)

    @classmethod
    def section_fields(cls, sec: Mapping[str, Any]) -> dict[str, Any]:
        return {"base_iface": sec.get("base-iface"), "mode": sec.get("mode"),
                "promiscuous": sec.get("promiscuous")}

    def section(self) -> dict[str, Any] | None:
        return _given({"base-iface": self.base_iface, "mode": self.mode,
                       "promiscuous": self.promiscuous})


@dataclass(frozen=True, kw_only=True)
class IpVlan(Interface):
    TYPE = "ipvlan"
    SECTION = "ipvlan"
    VIRTUAL = True
    STACKED = True

    base_iface: str | None = None
    mode: str | None = None  # l2, l3, l3s

    @classmethod
    def section_fields(cls, sec: Mapping[str, Any]) -> dict[str, Any]:
        return {"base_iface": sec.get("base-iface"), "mode": sec.get("mode")}

    def section(self) -> dict[str, Any] | None:
        return _given({"base-iface": self.base_iface, "mode": self.mode})


@dataclass(frozen=True, kw_only=True)
class Veth(Interface):
    TYPE = "veth"
    SECTION = "veth"
    VIRTUAL = True

    peer: str | None = None  # None also when the peer is in another namespace

    @classmethod
    def section_fields(cls, sec: Mapping[str, Any]) -> dict[str, Any]:
        return {"peer": sec.get("peer")}

    def section(self) -> dict[str, Any] | None:
        return _given({"peer": self.peer})

    def linked_names(self) -> set[str]:
        return {self.peer} if self.peer else set()


@dataclass(frozen=True, kw_only=True)
class Dummy(Interface):
    TYPE = "dummy"
    VIRTUAL = True


@dataclass(frozen=True, kw_only=True)
class Vxlan(Interface):
    TYPE = "vxlan"
    SECTION = "vxlan"
    VIRTUAL = True
    STACKED = True  # its base-iface, when it has one, comes first

    base_iface: str | None = None
    vxlan_id: int | None = None
    remote: str | None = None
    local: str | None = None
    destination_port: int | None = None

    @classmethod
    def section_fields(cls, sec: Mapping[str, Any]) -> dict[str, Any]:
        def num(key: str) -> int | None:
            return None if sec.get(key) is None else int(sec[key])

        def ip(key: str) -> str | None:
            # one spelling per address ("fd00::01" is fd00::1) so that comparing works
            return str(ipaddress.ip_address(sec[key])) if sec.get(key) else None

        return {"base_iface": sec.get("base-iface") or None, "vxlan_id": num("id"),
                "remote": ip("remote"), "local": ip("local"),
                "destination_port": num("destination-port")}

    def section(self) -> dict[str, Any] | None:
        return _given({"base-iface": self.base_iface, "id": self.vxlan_id,
                       "remote": self.remote, "local": self.local,
                       "destination-port": self.destination_port})


def _port_list(sec: Mapping[str, Any], *keys: str) -> tuple[str, ...] | None:
    """The port names a controller section lists under the first of `keys` it has."""
    for key in keys:
        if key in sec:
            return tuple(str(p) for p in sec[key] or [])
    return None


def _port_differences(name: str, where: str, want: tuple[str, ...] | None,
                      have: tuple[str, ...] | None) -> list[str]:
    if want is None or sorted(want) == sorted(have or ()):
        return []
    return [f"{name}.{where} is {sorted(have or ())}, wanted {sorted(want)}"]


@dataclass(frozen=True, kw_only=True)
class NamedPortsController(Interface):
    """A controller whose section lists its ports by name (bond, vrf)."""

    VIRTUAL = True
    CONTROLLER = True

    ports: tuple[str, ...] | None = None

    def linked_names(self) -> set[str]:
        return set(self.ports or ())

    def port_names(self) -> tuple[str, ...] | None:
        return self.ports


@dataclass(frozen=True, kw_only=True)
class Bond(NamedPortsController):
    TYPE = "bond"
    SECTION = "link-aggregation"

    mode: str | None = None  # canonical (balance-rr, 802.3ad, …)
    options: Mapping[str, Any] | None = None  # normalised values (net.bond.normalise)

    @classmethod
    def section_fields(cls, sec: Mapping[str, Any]) -> dict[str, Any]:
        options = sec.get("options")
        return {"mode": None if sec.get("mode") is None else bond.mode_name(sec["mode"]),
                # `ports` and the older `slaves` are accepted as nmstate does
                "ports": _port_list(sec, "port", "ports", "slaves"),
                "options": None if options is None else
                {k: bond.normalise(k, v) for k, v in options.items()}}

    def section(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        if self.mode is not None:
            out["mode"] = self.mode
        if self.options is not None:
            out["options"] = dict(self.options)
        if self.ports is not None:
            out["port"] = list(self.ports)
        return out or None

    def section_differences(self, have: Interface) -> list[str]:
        got = have if isinstance(have, Bond) else Bond(name=have.name)
        where = f"{self.name}.link-aggregation"
        out: list[str] = []
        if self.mode is not None and self.mode != got.mode:
            out.append(f"{where}.mode is {got.mode}, wanted {self.mode}")
        for key, value in (self.options or {}).items():
            now = (got.options or {}).get(key)
            if now != value:
                out.append(f"{where}.options.{key} is {now}, wanted {value}")
        return out + _port_differences(self.name, "link-aggregation.port", self.ports,
                                       got.ports)


@dataclass(frozen=True, kw_only=True)
class Vrf(NamedPortsController):
    TYPE = "vrf"
    SECTION = "vrf"

    table_id: int | None = None

    @classmethod
    def section_fields(cls, sec: Mapping[str, Any]) -> dict[str, Any]:
        table = sec.get("route-table-id")
        return {"ports": _port_list(sec, "port"),
                "table_id": None if table is None else int(table)}

    def section(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        if self.ports is not None:
            out["port"] = list(self.ports)
        if self.table_id is not None:
            out["route-table-id"] = self.table_id
        return out or None

    def section_differences(self, have: Interface) -> list[str]:
        got = have if isinstance(have, Vrf) else Vrf(name=have.name)
        out: list[str] = []
        if self.table_id is not None and self.table_id != got.table_id:
            out.append(f"{self.name}.vrf.route-table-id is {got.table_id}, "
                       f"wanted {self.table_id}")
        return out + _port_differences(self.name, "vrf.port", self.ports, got.ports)


def _given(section: dict[str, Any]) -> dict[str, Any] | None:
    out = {k: v for k, v in section.items() if v is not None}
    return out or None


# the interface types with a model of their own; others are plain Interface
TYPES: dict[str, type[Interface]] = {
    cls.TYPE: cls for cls in (LinuxBridge, Vlan, MacVlan, IpVlan, Veth, Dummy, Vxlan, Bond,
                              Vrf) if cls.TYPE}
VIRTUAL_TYPES = tuple(name for name, cls in TYPES.items() if cls.VIRTUAL)


def interface_from_nmstate(iface: Mapping[str, Any]) -> Interface:
    itype = iface.get("type")
    cls = TYPES.get(itype, Interface) if isinstance(itype, str) else Interface
    extra = cls.section_fields(iface.get(cls.SECTION) or {}) if cls.SECTION else {}
    mac = iface.get("mac-address")
    return cls(name=iface["name"], type=itype, state=iface.get("state"), mtu=iface.get("mtu"),
               mac=mac.upper() if mac else None, ipv4=IpConfig.from_nmstate(iface.get("ipv4")),
               ipv6=IpConfig.from_nmstate(iface.get("ipv6")),
               ethtool=(iface.get("ethtool") or {}).get("feature"), **extra)


# -- routes ---------------------------------------------------------------------------

MAIN_TABLE = 254


@dataclass(frozen=True, kw_only=True)
class Route:
    destination: IPNetwork | None = None
    next_hop_interface: str | None = None
    next_hop_address: IPAddress | None = None
    metric: int | None = None
    table_id: int | None = None
    absent: bool = False

    @classmethod
    def from_nmstate(cls, route: Mapping[str, Any] | Route) -> Route:
        if isinstance(route, Route):
            return route
        dst, gw = route.get("destination"), route.get("next-hop-address")
        table = route.get("table-id")
        return cls(destination=ipaddress.ip_network(dst, strict=False) if dst else None,
                   next_hop_interface=route.get("next-hop-interface"),
                   next_hop_address=ipaddress.ip_address(gw) if gw else None,
                   metric=route.get("metric"),
                   # nmstate's table 0 is the main table
                   table_id=MAIN_TABLE if table == 0 else table,
                   absent=route.get("state") == "absent")

    def fields(self) -> dict[str, Any]:
        """The given fields in nmstate's spelling (without `state`)."""
        return _given({"destination": None if self.destination is None else str(self.destination),
                       "next-hop-interface": self.next_hop_interface,
                       "next-hop-address": None if self.next_hop_address is None
                       else str(self.next_hop_address),
                       "metric": self.metric, "table-id": self.table_id}) or {}

    def to_nmstate(self) -> dict[str, Any]:
        return {**self.fields(), "state": "absent"} if self.absent else self.fields()

    def matches(self, have: Route) -> bool:
        """Every field this route names has the same value in `have`; a route to add
        without a table is in the main one (an absent one without a table: any table)."""
        got = have.fields()
        want = self.fields()
        if not self.absent and self.table_id is None:
            want["table-id"] = MAIN_TABLE
        return all(got.get(k) == v for k, v in want.items())


# -- route rules ----------------------------------------------------------------------

RULE_KEYS = ("family", "ip-from", "ip-to", "priority", "route-table", "fwmark", "fwmask",
             "iif", "action")


def parse_mark(value: Any) -> int:
    """A firewall mark as nmstate takes it: an integer, decimal digits or 0x-hex."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32:
        return value
    if isinstance(value, str) and value.isascii():
        text = value.lower()
        try:
            number = int(text, 16) if text.startswith("0x") else int(text, 10)
        except ValueError:
            number = -1
        if 0 <= number < 2**32 and (text.startswith("0x") or text.isdigit()):
            return number
    raise ValueError(f"{value!r} is not a 32-bit mark (an integer or 0x-hex)")


@dataclass(frozen=True, kw_only=True)
class RouteRule:
    """A policy-routing rule. A rule to add without `action` or `route-table` looks up the
    main table, as nmstate's does; an absent one removes every rule matching the fields
    it gives."""

    family: str | None = None  # ipv4 / ipv6; else from the addresses
    ip_from: IPNetwork | None = None
    ip_to: IPNetwork | None = None
    priority: int | None = None
    route_table: int | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    iif: str | None = None
    action: str | None = None  # blackhole, unreachable, prohibit
    absent: bool = False

    @classmethod
    def from_nmstate(cls, rule: Mapping[str, Any]) -> RouteRule:
        def net(key: str) -> IPNetwork | None:
            return ipaddress.ip_network(rule[key], strict=False) if rule.get(key) else None

        def num(key: str) -> int | None:
            return None if rule.get(key) is None else int(rule[key])

        def mark(key: str) -> int | None:
            return None if rule.get(key) is None else parse_mark(rule[key])

        ip_from, ip_to = net("ip-from"), net("ip-to")
        family = rule.get("family")
        prefix = ip_from or ip_to
        if family is None and prefix is not None:
            family = f"ipv{prefix.version}"
        absent = rule.get("state") == "absent"
        table = num("route-table")
        if not absent and table in (None, 0) and not rule.get("action"):
            table = MAIN_TABLE
        return cls(family=family, ip_from=ip_from, ip_to=ip_to, priority=num("priority"),
                   route_table=table, fwmark=mark("fwmark"), fwmask=mark("fwmask"),
                   iif=rule.get("iif"), action=rule.get("action"), absent=absent)

    @property
    def version(self) -> int:
        return 6 if self.family == "ipv6" else 4

    def fields(self) -> dict[str, Any]:
        """The given fields in nmstate's spelling (marks in hex, as nmstate shows them)."""
        return _given({
            "family": self.family,
            "ip-from": None if self.ip_from is None else str(self.ip_from),
            "ip-to": None if self.ip_to is None else str(self.ip_to),
            "priority": self.priority, "route-table": self.route_table,
            "fwmark": None if self.fwmark is None else hex(self.fwmark),
            "fwmask": None if self.fwmask is None else hex(self.fwmask),
            "iif": self.iif, "action": self.action}) or {}

    def to_nmstate(self) -> dict[str, Any]:
        return {**self.fields(), "state": "absent"} if self.absent else self.fields()

    def matches(self, have: RouteRule) -> bool:
        """An absent rule: every field it gives is the same in `have` (a wildcard for the
        others). A rule to add: the same selectors and action exactly (a rule with one
        more selector is another rule), the priority only when given."""
        got, want = have.fields(), self.fields()
        if self.absent:
            return all(got.get(k) == v for k, v in want.items())
        keys = [k for k in RULE_KEYS if k != "priority"]
        return all(got.get(k) == want.get(k) for k in keys) and \
            (self.priority is None or self.priority == have.priority)


# -- the whole state ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Probes:
    ping: tuple[str, ...] = ()
    default_gateway: bool = True
    dns: tuple[str, ...] = ()  # names that must resolve through the node's resolver
    api_server: str | None = None  # "ADDR:PORT" that must accept a TCP connection
    timeout: int | None = None  # seconds each DNS/TCP probe may take


@dataclass(frozen=True, kw_only=True)
class NodeState:
    interfaces: tuple[Interface, ...] = ()
    routes: tuple[Route, ...] = ()  # routes.config
    running: tuple[Route, ...] = ()  # routes.running (read from a node only)
    rules: tuple[RouteRule, ...] | None = None  # route-rules.config; None: not given
    # dns-resolver.config: server/search/options lists (the keys given); None: not given
    dns: Mapping[str, list[str]] | None = None
    probes: Probes = dataclasses.field(default_factory=Probes)

    def interface(self, name: str) -> Interface | None:
        return next((i for i in self.interfaces if i.name == name), None)

    def to_nmstate(self) -> dict[str, Any]:
        out = {"interfaces": [i.to_nmstate() for i in self.interfaces],
               "routes": {"config": [r.to_nmstate() for r in self.routes],
                          "running": [r.to_nmstate() for r in self.running]}}
        if self.rules:
            out["route-rules"] = {"config": [r.to_nmstate() for r in self.rules]}
        if self.dns is not None:
            out["dns-resolver"] = {"config": {k: list(v) for k, v in self.dns.items()}}
        return out


def _dns_config(state: Mapping[str, Any]) -> Mapping[str, list[str]] | None:
    config = (state.get("dns-resolver") or {}).get("config")
    if config is None:
        return None
    # as nmstate: an empty config removes every server, search domain and option
    return dict(config) or {"server": [], "search": [], "options": []}


def from_nmstate(state: Mapping[str, Any] | NodeState | None) -> NodeState:
    """The typed state of an nmstate mapping (validated, or read from a node); a NodeState
    is returned as is."""
    if isinstance(state, NodeState):
        return state
    if not state:
        return NodeState()
    routes = state.get("routes") or {}
    probes = state.get("probes") or {}
    rules = None
    if "route-rules" in state:
        rules = tuple(RouteRule.from_nmstate(r)
                      for r in (state["route-rules"] or {}).get("config") or [])
    return NodeState(
        interfaces=tuple(interface_from_nmstate(i) for i in state.get("interfaces") or []),
        routes=tuple(Route.from_nmstate(r) for r in routes.get("config") or []),
        running=tuple(Route.from_nmstate(r) for r in routes.get("running") or []),
        rules=rules,
        dns=_dns_config(state),
        probes=Probes(ping=tuple(probes.get("ping") or ()),
                      default_gateway=probes.get("default-gateway", True),
                      dns=tuple(probes.get("dns") or ()), api_server=probes.get("api-server"),
                      timeout=probes.get("timeout")))
