"""What a call asks for beyond the config: a MAC and IP addresses.

Three places can carry a request, and the reference plugins read them in this order
of precedence (a later source overrides an earlier one):
1. legacy `CNI_ARGS` (`IP=`, `MAC=`), parsed like Go's `types.LoadArgs`;
2. `args.cni` in the config (`{"args": {"cni": {"ips": [...], "mac": "..."}}}`);
3. `runtimeConfig` (`ips`, `mac` capabilities injected by the runtime).

`CNI_ARGS` keys a plugin does not know are an error unless `IgnoreUnknown` is true,
exactly as in the Go plugins: container runtimes (kubelet, containerd, CRI-O, Multus)
always send `IgnoreUnknown=1` with their `K8S_POD_*` keys, so strictness only bites a
hand-written `CNI_ARGS` with a typo, which is the case worth reporting.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from multihome.cni.errors import InvalidConfig, InvalidEnvironment
from multihome.cni.types import CmdArgs

if TYPE_CHECKING:
    from multihome.cni.skel import Call

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

IGNORE_UNKNOWN = "IgnoreUnknown"

_TRUE = ("1", "true")
_FALSE = ("0", "false")

# Forms Go's net.ParseMAC accepts for 6-byte addresses.
_MAC_FORMS = (
    re.compile(r"([0-9A-Fa-f]{2})[:]([0-9A-Fa-f]{2})[:]([0-9A-Fa-f]{2})[:]"
               r"([0-9A-Fa-f]{2})[:]([0-9A-Fa-f]{2})[:]([0-9A-Fa-f]{2})\Z"),
    re.compile(r"([0-9A-Fa-f]{2})-([0-9A-Fa-f]{2})-([0-9A-Fa-f]{2})-"
               r"([0-9A-Fa-f]{2})-([0-9A-Fa-f]{2})-([0-9A-Fa-f]{2})\Z"),
    re.compile(r"([0-9A-Fa-f]{2})([0-9A-Fa-f]{2})\.([0-9A-Fa-f]{2})([0-9A-Fa-f]{2})\."
               r"([0-9A-Fa-f]{2})([0-9A-Fa-f]{2})\Z"),
)


def parse_bool_arg(key: str, value: str) -> bool:
    """Go's `UnmarshallableBool`: 1/true/0/false, any case."""
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise InvalidEnvironment(
        f"invalid CNI_ARGS value {key}={value!r}: expected 1, true, 0 or false"
    )


def load_cni_args(cmd: CmdArgs, known: Iterable[str]) -> dict[str, str]:
    """The `CNI_ARGS` pairs as a dict, refusing unknown keys unless `IgnoreUnknown` is true.

    `known` are the keys this plugin reads (IgnoreUnknown is always known). The last
    occurrence of a repeated key wins, as with Go's reflection-based loader.
    """
    pairs = cmd.args_pairs
    allowed = {*known, IGNORE_UNKNOWN}
    values: dict[str, str] = {}
    unknown: list[str] = []
    for key, value in pairs:
        if key in allowed:
            values[key] = value
        else:
            unknown.append(f"{key}={value}")
    ignore = parse_bool_arg(IGNORE_UNKNOWN, values[IGNORE_UNKNOWN]) \
        if IGNORE_UNKNOWN in values else False
    if unknown and not ignore:
        raise InvalidEnvironment(
            f"unknown CNI_ARGS keys {unknown}: this plugin reads only "
            f"{sorted(allowed)}; add IgnoreUnknown=1 to pass other keys through"
        )
    return values


def parse_mac(value: Any, where: str) -> str:
    """A unicast 6-byte MAC in lower-case colon form; anything else is a bad config."""
    if not isinstance(value, str):
        raise InvalidConfig(f"invalid MAC address {value!r} in {where}: expected a string")
    for form in _MAC_FORMS:
        m = form.match(value)
        if m:
            octets = [int(g, 16) for g in m.groups()]
            break
    else:
        raise InvalidConfig(
            f"invalid MAC address {value!r} in {where}: expected six hex octets "
            "like 0a:58:0a:f4:00:05"
        )
    if octets[0] & 1:
        raise InvalidConfig(
            f"invalid MAC address {value!r} in {where}: it is a multicast address; "
            "an interface needs a unicast MAC (first octet even)"
        )
    return ":".join(f"{o:02x}" for o in octets)


def parse_ip(value: Any, where: str, *, require_prefix: bool = False) -> IPInterface:
    """`10.1.2.3` or `10.1.2.3/24` (bare addresses get a host prefix unless refused)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidConfig(f"invalid IP address {value!r} in {where}: expected a string")
    text = value.strip()
    if require_prefix and "/" not in text:
        raise InvalidConfig(
            f"invalid IP address {value!r} in {where}: expected CIDR notation like 10.1.2.3/24"
        )
    try:
        return ipaddress.ip_interface(text)
    except ValueError as e:
        raise InvalidConfig(f"invalid IP address {value!r} in {where}: {e}") from e


@dataclass
class IPRequests:
    """Requested addresses by source, so that a plugin can pick or merge them."""

    cni_args: list[IPInterface] = field(default_factory=list)
    args_cni: list[IPInterface] = field(default_factory=list)
    runtime_config: list[IPInterface] = field(default_factory=list)

    def preferred(self) -> list[IPInterface]:
        """The highest-precedence non-empty source (static's rule)."""
        return self.runtime_config or self.args_cni or self.cni_args

    def merged(self) -> list[IPInterface]:
        """All sources in order, without duplicates (host-local's rule)."""
        out: list[IPInterface] = []
        for ip in (*self.cni_args, *self.args_cni, *self.runtime_config):
            if ip not in out:
                out.append(ip)
        return out


def _ip_list(value: Any, where: str, require_prefix: bool) -> list[IPInterface]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidConfig(f"invalid {where}: expected a list of IP addresses")
    return [parse_ip(v, where, require_prefix=require_prefix) for v in value]


def ip_requests(call: Call, *, known_args: Iterable[str] = ("IP",),
                require_prefix: bool = False) -> IPRequests:
    """Requested IPs from every source; `CNI_ARGS IP=` may hold a comma-separated list."""
    env = load_cni_args(call.cmd, known_args)
    from_env: list[IPInterface] = []
    if env.get("IP"):
        from_env = [parse_ip(item, "CNI_ARGS IP", require_prefix=require_prefix)
                    for item in env["IP"].split(",") if item.strip()]
    return IPRequests(
        cni_args=from_env,
        args_cni=_ip_list(call.conf.cni_args.get("ips"), "args.cni.ips", require_prefix),
        runtime_config=_ip_list(call.conf.runtime_config.get("ips"), "runtimeConfig.ips",
                                require_prefix),
    )


def requested_ips(call: Call, *, known_args: Iterable[str] = ("IP",),
                  require_prefix: bool = False) -> list[IPInterface]:
    """Requested IPs, highest-precedence source only: runtimeConfig > args.cni > CNI_ARGS."""
    return ip_requests(call, known_args=known_args, require_prefix=require_prefix).preferred()


def requested_mac(call: Call, *, known_args: Iterable[str] = ("MAC",)) -> str | None:
    """Requested MAC: runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC=, normalised."""
    # CNI_ARGS is checked first even when unused, as the Go plugins always load it.
    env_mac = load_cni_args(call.cmd, known_args).get("MAC")
    rc_mac = call.conf.runtime_config.get("mac")
    if rc_mac:
        return parse_mac(rc_mac, "runtimeConfig.mac")
    args_mac = call.conf.cni_args.get("mac")
    if args_mac:
        return parse_mac(args_mac, "args.cni.mac")
    if env_mac:
        return parse_mac(env_mac, "CNI_ARGS MAC")
    return None
