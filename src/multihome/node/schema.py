"""Desired state in nmstate's schema (the subset multihome applies), checked before any change.

Every unknown key or wrong type is reported with its path, e.g.
``interfaces[0].bridge.port[1].vlan.mdoe: unknown key``. `parse` checks and then turns the
mapping into the typed models of state.py, once; the mapping itself stays in nmstate's
spelling so that `node show` output can be fed back to `node apply`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multihome.cni.errors import InvalidConfig
from multihome.net import bond, sublinks
from multihome.node import dns, probes
from multihome.node import state as models
from multihome.node.state import VIRTUAL_TYPES, trunk_ids

__all__ = ["VIRTUAL_TYPES", "InvalidDesiredState", "parse", "trunk_ids", "validate"]

IFACE_TYPES = (*models.TYPES, "ethernet", "unknown")
STATES = ("up", "down", "absent")
MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


class InvalidDesiredState(InvalidConfig):
    """The desired state does not follow the schema; nothing was changed."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path


# -- a tiny declarative schema: mappings with known keys, lists, scalars --------------


@dataclass(frozen=True)
class Scalar:
    kind: type
    choices: tuple[Any, ...] = ()
    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class MapOf:
    keys: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """A value checked by a function that raises ValueError saying what is wrong."""

    test: Callable[[Any], Any]


@dataclass(frozen=True)
class Options:
    """A mapping of named options, each value checked by `test(name, value)`."""

    names: tuple[str, ...] | None  # None: any name
    test: Callable[[str, Any], Any]


STR = Scalar(str)
BOOL = Scalar(bool)


def INT(low: int | None = None, high: int | None = None) -> Scalar:
    return Scalar(int, low=low, high=high)


def ENUM(*choices: str) -> Scalar:
    return Scalar(str, choices=choices)


def NUM(low: int, high: int) -> Check:
    """An integer, also written as a string of digits (as nmstate reads `id: "102"`)."""
    def test(value: Any) -> None:
        if not low <= bond.parse_uint(value) <= high:
            raise ValueError(f"{value} is not between {low} and {high}")
    return Check(test)


def _ip_address(value: Any) -> None:
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address, got {_type_name(value)} {value!r}")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


IP_ADDRESS = Check(_ip_address)


_VLAN_ID = INT(0, 4094)
_ADDRESS = MapOf({"ip": STR, "prefix-length": INT(0, 128)})
_IP = MapOf({"enabled": BOOL, "address": ListOf(_ADDRESS), "dhcp": BOOL, "autoconf": BOOL})
_TRUNK_TAG = MapOf({"id": _VLAN_ID, "id-range": MapOf({"min": _VLAN_ID, "max": _VLAN_ID})})
_PORT_VLAN = MapOf({"mode": ENUM("trunk", "access"), "tag": _VLAN_ID, "enable-native": BOOL,
                    "trunk-tags": ListOf(_TRUNK_TAG)})
_PORT = MapOf({"name": STR, "stp-hairpin-mode": BOOL, "stp-path-cost": INT(1, 65535),
               "stp-priority": INT(0, 63), "vlan": _PORT_VLAN})
_STP = MapOf({"enabled": BOOL, "forward-delay": INT(2, 30), "hello-time": INT(1, 10),
              "max-age": INT(6, 40), "priority": INT(0, 65535)})
_BRIDGE = MapOf({"options": MapOf({"stp": _STP, "mac-ageing-time": INT(0)}),
                 "port": ListOf(_PORT)})
_NAMES = ListOf(STR)
_BOND = MapOf({"mode": Check(bond.mode_name), "options": Options(bond.OPTIONS, bond.normalise),
               "port": _NAMES, "ports": _NAMES, "slaves": _NAMES})
_VXLAN = MapOf({"base-iface": STR, "id": NUM(0, 2**24 - 1), "remote": IP_ADDRESS,
                "local": IP_ADDRESS, "destination-port": NUM(0, 65535)})
_VRF = MapOf({"port": _NAMES, "route-table-id": NUM(1, 2**32 - 1)})
# the section of each interface type that has one (its key: the model's SECTION);
# `protocol` is accepted as nmstate writes it (802.1q is the only one)
TYPE_SECTIONS: dict[str, MapOf] = {
    "linux-bridge": _BRIDGE,
    "vlan": MapOf({"base-iface": STR, "id": _VLAN_ID, "protocol": ENUM("802.1q")}),
    "mac-vlan": MapOf({"base-iface": STR, "mode": ENUM(
        "vepa", "bridge", "private", "passthru", "source"), "promiscuous": BOOL}),
    "ipvlan": MapOf({"base-iface": STR, "mode": ENUM(*sublinks.IPVLAN_MODES)}),
    "veth": MapOf({"peer": STR}),
    "vxlan": _VXLAN,
    "bond": _BOND,
    "vrf": _VRF,
}
def _feature(name: str, on: Any) -> None:
    if not isinstance(on, bool):
        raise ValueError(f"expected a boolean, got {_type_name(on)} {on!r}")


_ETHTOOL = MapOf({"feature": Options(None, _feature)})
_COMMON = {"name": STR, "type": ENUM(*IFACE_TYPES), "state": ENUM(*STATES),
           "mtu": INT(68, 2**31 - 1), "mac-address": STR, "ipv4": _IP, "ipv6": _IP,
           "description": STR, "ethtool": _ETHTOOL}
_ROUTE = MapOf({"destination": STR, "next-hop-interface": STR, "next-hop-address": STR,
                "metric": INT(0), "table-id": INT(0), "state": ENUM("absent")})
_MARK = Check(models.parse_mark)
_RULE = MapOf({"family": ENUM("ipv4", "ipv6"), "state": ENUM("absent"), "ip-from": STR,
               "ip-to": STR, "priority": NUM(0, 2**32 - 1), "route-table": NUM(0, 2**32 - 1),
               "fwmark": _MARK, "fwmask": _MARK, "iif": STR,
               "action": ENUM("blackhole", "unreachable", "prohibit")})
def _word(pattern: re.Pattern[str], what: str) -> Check:
    """One resolv.conf word: a policy's value can never add a line or a key."""
    def test(value: Any) -> None:
        if not isinstance(value, str) or not pattern.match(value):
            raise ValueError(f"{value!r} is not {what}")
    return Check(test)


_DNS_CONFIG = MapOf({"server": ListOf(IP_ADDRESS),
                     "search": ListOf(_word(dns.DOMAIN_RE, "a domain name")),
                     "options": ListOf(_word(dns.OPTION_RE, "a resolver option"))})
_DNS = MapOf({"config": _DNS_CONFIG, "running": _DNS_CONFIG})
_PROBES = MapOf({"ping": ListOf(STR), "default-gateway": BOOL, "timeout": INT(1, 60),
                 "dns": ListOf(STR), "api-server": STR})
# interfaces are checked one by one (their keys depend on their type)
_TOP = MapOf({"interfaces": ListOf(None), "routes": MapOf({"config": ListOf(_ROUTE),
                                                               "running": ListOf(_ROUTE)}),
              "route-rules": MapOf({"config": ListOf(_RULE)}), "dns-resolver": _DNS,
              "probes": _PROBES})


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", str: "string", list: "list",
            dict: "mapping"}.get(type(value), type(value).__name__)


def check(value: Any, spec: Any, path: str) -> None:
    """Raise InvalidDesiredState at the first key or value that does not fit `spec`."""
    if spec is None:
        return
    if isinstance(spec, Check):
        try:
            spec.test(value)
        except ValueError as e:
            raise InvalidDesiredState(path, str(e)) from None
    elif isinstance(spec, Options):
        if not isinstance(value, dict):
            raise InvalidDesiredState(path, f"expected a mapping, got {_type_name(value)}")
        for key, sub in value.items():
            where = f"{path}.{key}"
            if spec.names is not None and key not in spec.names:
                raise InvalidDesiredState(where, "unknown key")
            try:
                spec.test(key, sub)
            except ValueError as e:
                raise InvalidDesiredState(where, str(e)) from None
    elif isinstance(spec, MapOf):
        if not isinstance(value, dict):
            raise InvalidDesiredState(path, f"expected a mapping, got {_type_name(value)}")
        for key, sub in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in spec.keys:
                raise InvalidDesiredState(where, "unknown key")
            check(sub, spec.keys[key], where)
    elif isinstance(spec, ListOf):
        if not isinstance(value, list):
            raise InvalidDesiredState(path, f"expected a list, got {_type_name(value)}")
        for i, item in enumerate(value):
            check(item, spec.item, f"{path}[{i}]")
    else:
        assert isinstance(spec, Scalar)
        # bool is an int in Python: keep `mtu: true` and `enabled: 1` apart
        if not isinstance(value, spec.kind) or (spec.kind is int and isinstance(value, bool)):
            raise InvalidDesiredState(path, f"expected a {_type_name(spec.kind())}, got "
                                            f"{_type_name(value)} {value!r}")
        if spec.choices and value not in spec.choices:
            raise InvalidDesiredState(path, f"{value!r} is not one of "
                                            f"{', '.join(map(str, spec.choices))}")
        if spec.low is not None and isinstance(value, int) and value < spec.low:
            raise InvalidDesiredState(path, f"{value} is below the minimum {spec.low}")
        if spec.high is not None and isinstance(value, int) and value > spec.high:
            raise InvalidDesiredState(path, f"{value} is above the maximum {spec.high}")


def _check_interface(iface: Any, path: str) -> None:
    if not isinstance(iface, dict):
        raise InvalidDesiredState(path, f"expected a mapping, got {_type_name(iface)}")
    itype = iface.get("type")
    keys = dict(_COMMON)
    if isinstance(itype, str) and itype in TYPE_SECTIONS:
        section = models.TYPES[itype].SECTION
        assert section is not None
        keys[section] = TYPE_SECTIONS[itype]
    check(iface, MapOf(keys), path)
    name = iface.get("name")
    if not name:
        raise InvalidDesiredState(f"{path}.name", "required")
    if not isinstance(name, str) or not _valid_name(name):
        raise InvalidDesiredState(f"{path}.name", f"{name!r} is not a valid interface name "
                                                  "(at most 15 characters, no '/' or spaces)")
    mac = iface.get("mac-address")
    if mac is not None and not MAC_RE.match(mac):
        raise InvalidDesiredState(f"{path}.mac-address", f"{mac!r} is not a MAC address")
    for family in ("ipv4", "ipv6"):
        _check_ip(iface.get(family), family, f"{path}.{family}")
    if iface.get("state") != "absent":
        _check_required(iface, itype, path)
    for i, port in enumerate((iface.get("bridge") or {}).get("port") or []):
        where = f"{path}.bridge.port[{i}]"
        if "name" not in port:
            raise InvalidDesiredState(f"{where}.name", "required")
        _check_port_vlan(port.get("vlan"), f"{where}.vlan")


# keys a type's section must give when the interface is not absent (nmstate's mandatory
# fields; `mode` of a bond and `route-table-id` of a vrf only matter when it is created,
# which apply checks against the node)
_REQUIRED = {"vlan": ("base-iface", "id"), "mac-vlan": ("base-iface",),
             "ipvlan": ("base-iface",), "vxlan": ("id",)}


def _check_required(iface: dict[str, Any], itype: Any, path: str) -> None:
    section_key = models.TYPES[itype].SECTION if itype in models.TYPES else None
    sec = iface.get(section_key) or {} if section_key else {}
    for key in _REQUIRED.get(itype, ()):
        if key not in sec:
            raise InvalidDesiredState(f"{path}.{section_key}.{key}", "required")
    if itype == "bond":
        given = [k for k in ("port", "ports", "slaves") if k in sec]
        if len(given) > 1:
            raise InvalidDesiredState(f"{path}.link-aggregation.{given[1]}",
                                      f"give the ports once (as port), not as {given}")
    for key in ("port", "ports", "slaves"):
        names = sec.get(key) if itype in ("bond", "vrf") else None
        if names and len(set(names)) != len(names):
            raise InvalidDesiredState(f"{path}.{section_key}.{key}", "lists a port twice")
        if names and iface["name"] in names:
            raise InvalidDesiredState(f"{path}.{section_key}.{key}",
                                      f"{iface['name']} cannot be its own port")


def _check_ip(section: dict[str, Any] | None, family: str, path: str) -> None:
    if not section:
        return
    for key in ("dhcp", "autoconf"):
        if section.get(key):
            raise InvalidDesiredState(f"{path}.{key}", "dynamic addressing is not supported; "
                                                       "give static addresses")
    version = 4 if family == "ipv4" else 6
    for i, entry in enumerate(section.get("address") or []):
        where = f"{path}.address[{i}]"
        if "ip" not in entry or "prefix-length" not in entry:
            raise InvalidDesiredState(where, "needs ip and prefix-length")
        try:
            ip = ipaddress.ip_interface(f"{entry['ip']}/{entry['prefix-length']}")
        except ValueError as e:
            raise InvalidDesiredState(where, str(e)) from None
        if ip.version != version:
            raise InvalidDesiredState(f"{where}.ip", f"{entry['ip']} is not an {family} address")


def _check_port_vlan(vlan: dict[str, Any] | None, path: str) -> None:
    if not vlan:
        return
    mode = vlan.get("mode", "access" if "tag" in vlan else "trunk")
    if mode == "access":
        if "tag" not in vlan:
            raise InvalidDesiredState(f"{path}.tag", "required for mode access")
        if vlan.get("trunk-tags"):
            raise InvalidDesiredState(f"{path}.trunk-tags", "only for mode trunk")
        return
    if not vlan.get("trunk-tags"):
        raise InvalidDesiredState(f"{path}.trunk-tags", "required for mode trunk")
    if vlan.get("enable-native") and "tag" not in vlan:
        raise InvalidDesiredState(f"{path}.tag", "required with enable-native")
    for i, tag in enumerate(vlan["trunk-tags"]):
        where = f"{path}.trunk-tags[{i}]"
        if ("id" in tag) == ("id-range" in tag):
            raise InvalidDesiredState(where, "give exactly one of id or id-range")
        rng = tag.get("id-range")
        if rng is not None and (("min" not in rng or "max" not in rng)
                                or rng["min"] > rng["max"]):
            raise InvalidDesiredState(f"{where}.id-range", "needs min <= max")


def _check_route(route: dict[str, Any], path: str) -> None:
    if route.get("state") != "absent":
        for key in ("destination", "next-hop-interface"):
            if key not in route:
                raise InvalidDesiredState(f"{path}.{key}", "required")
    for key in ("destination",):
        if key in route:
            try:
                ipaddress.ip_network(route[key], strict=False)
            except ValueError as e:
                raise InvalidDesiredState(f"{path}.{key}", str(e)) from None
    if route.get("next-hop-address"):
        try:
            ipaddress.ip_address(route["next-hop-address"])
        except ValueError as e:
            raise InvalidDesiredState(f"{path}.next-hop-address", str(e)) from None


def _check_rule(rule: dict[str, Any], path: str) -> None:
    """nmstate's checks: a family, or addresses that give it and agree with it; a mask
    only with a mark; a table or an action, not both."""
    versions: dict[str, int] = {}
    for key in ("ip-from", "ip-to"):
        if rule.get(key) is not None:
            try:
                versions[key] = ipaddress.ip_network(rule[key], strict=False).version
            except ValueError as e:
                raise InvalidDesiredState(f"{path}.{key}", str(e)) from None
    family = rule.get("family")
    for key, version in versions.items():
        if family is not None and family != f"ipv{version}":
            raise InvalidDesiredState(f"{path}.{key}", f"{rule[key]} is not an {family} "
                                                       "prefix")
    if len(set(versions.values())) > 1:
        raise InvalidDesiredState(f"{path}.ip-to", "ip-from and ip-to are of different "
                                                   "families")
    if rule.get("state") != "absent" and not versions and family is None:
        raise InvalidDesiredState(path, "give ip-from, ip-to or family")
    if "fwmask" in rule and "fwmark" not in rule:
        raise InvalidDesiredState(f"{path}.fwmask", "only with fwmark")
    if rule.get("action") and rule.get("route-table"):
        raise InvalidDesiredState(f"{path}.action", "give either an action or a "
                                                    "route-table, not both")
    iif = rule.get("iif")
    if iif is not None and not _valid_name(iif):
        raise InvalidDesiredState(f"{path}.iif", f"{iif!r} is not a valid interface name")


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= 15 and "/" not in name and not any(c.isspace() for c in name)


def validate(state: Any) -> dict[str, Any]:
    """The desired state if it is valid; raises InvalidDesiredState naming the bad key."""
    if state is None:
        return {}
    check(state, _TOP, "")
    names: set[str] = set()
    for i, iface in enumerate(state.get("interfaces") or []):
        _check_interface(iface, f"interfaces[{i}]")
        if iface["name"] in names:
            raise InvalidDesiredState(f"interfaces[{i}].name",
                                      f"{iface['name']} is listed twice")
        names.add(iface["name"])
    for i, route in enumerate((state.get("routes") or {}).get("config") or []):
        _check_route(route, f"routes.config[{i}]")
    for i, rule in enumerate((state.get("route-rules") or {}).get("config") or []):
        _check_rule(rule, f"route-rules.config[{i}]")
    for key, values in ((state.get("dns-resolver") or {}).get("config") or {}).items():
        if len(values) > dns.MAX_ENTRIES:
            raise InvalidDesiredState(f"dns-resolver.config.{key}",
                                      f"more than {dns.MAX_ENTRIES} entries")
    try:
        probes.check(state.get("probes"))
    except probes.BadTarget as e:
        key, _, problem = str(e).partition(": ")
        raise InvalidDesiredState(f"probes.{key}", problem) from None
    return dict(state)


def parse(raw: Any) -> models.NodeState:
    """The typed desired state; raises InvalidDesiredState naming the bad key."""
    return models.from_nmstate(validate(raw))
