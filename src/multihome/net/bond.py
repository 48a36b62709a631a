"""Bond links: create, read and change the mode and options, in nmstate's option names.

nmstate spells bond options as the kernel's sysfs names (`miimon`, `xmit_hash_policy`…)
with enumerations by name (`layer3+4`, `fast`); netlink carries numbers. This module is
the one translation between the two. Options the bond's mode does not allow are refused
by the kernel (EACCES with its reason), which becomes a CNIError naming the option.
"""

from __future__ import annotations

import errno
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from multihome.cni.errors import CNIError

MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad",
         "balance-tlb", "balance-alb")
# other spellings nmstate accepts for a mode
MODE_ALIASES = {"lacp": "802.3ad", **{str(i): name for i, name in enumerate(MODES)}}

# options whose value is one of a list of names (the index is the kernel's number)
ENUM_OPTIONS: dict[str, tuple[str, ...]] = {
    "xmit_hash_policy": ("layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4",
                         "vlan+srcmac"),
    "lacp_rate": ("slow", "fast"),
    "ad_select": ("stable", "bandwidth", "count"),
    "primary_reselect": ("always", "better", "failure"),
    "fail_over_mac": ("none", "active", "follow"),
    "arp_validate": ("none", "active", "backup", "all", "filter", "filter_active",
                     "filter_backup"),
    "arp_all_targets": ("any", "all"),
    "all_slaves_active": ("dropped", "delivered"),
}
_INT_MAX = 2**31 - 1
# integer options and the range the kernel takes for each (netlink carries some in 8 or
# 16 bits: a bigger number must be refused here, it cannot even be sent)
INT_RANGES: dict[str, tuple[int, int]] = {
    "miimon": (0, _INT_MAX), "updelay": (0, _INT_MAX), "downdelay": (0, _INT_MAX),
    "arp_interval": (0, _INT_MAX), "min_links": (0, _INT_MAX), "resend_igmp": (0, 255),
    "packets_per_slave": (0, 65535), "lp_interval": (1, _INT_MAX),
    "ad_actor_sys_prio": (1, 65535), "ad_user_port_key": (0, 1023), "num_grat_arp": (0, 255),
}
INT_OPTIONS = tuple(INT_RANGES)
BOOL_OPTIONS = ("use_carrier", "tlb_dynamic_lb")
# `primary` names a port; netlink carries its ifindex
OPTIONS = (*ENUM_OPTIONS, *INT_OPTIONS, *BOOL_OPTIONS, "primary")
# options the kernel changes only while the bond has no ports
NO_PORTS_OPTIONS = ("fail_over_mac",)

# options the kernel takes only in some modes (its `unsuppmodes`); others in any mode
_NOT_ARP = ("balance-rr", "active-backup", "balance-xor", "broadcast")
_ONLY_IN: dict[str, tuple[str, ...]] = {
    "lacp_rate": ("802.3ad",), "ad_select": ("802.3ad",), "ad_actor_sys_prio": ("802.3ad",),
    "ad_user_port_key": ("802.3ad",), "primary": ("active-backup", "balance-tlb",
                                                   "balance-alb"),
    "packets_per_slave": ("balance-rr",), "tlb_dynamic_lb": ("balance-tlb", "balance-alb"),
    "arp_interval": _NOT_ARP, "arp_validate": _NOT_ARP,
}


def supported(option: str, mode: str) -> bool:
    """Whether the kernel takes `option` for a bond in `mode`."""
    return mode in _ONLY_IN.get(option, MODES)


# the netlink attribute of an option, where its name is not IFLA_BOND_<NAME>
_ATTR = {"lacp_rate": "IFLA_BOND_AD_LACP_RATE", "num_grat_arp": "IFLA_BOND_NUM_PEER_NOTIF"}


def parse_uint(value: Any) -> int:
    """A non-negative integer given as an int or as a string of ASCII digits (nmstate
    reads both); raises ValueError."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise ValueError(f"{value!r} is not a non-negative integer")


def attr(option: str) -> str:
    return _ATTR.get(option, f"IFLA_BOND_{option.upper()}")


def mode_name(value: Any) -> str:
    """The canonical mode of `value` (a name, an alias or the kernel's number)."""
    key = str(value)
    if key in MODES:
        return key
    if key in MODE_ALIASES:
        return MODE_ALIASES[key]
    raise ValueError(f"{value!r} is not a bond mode (one of {', '.join(MODES)})")


def normalise(option: str, value: Any) -> Any:
    """An option's value as `show` spells it: enum names, integers, booleans, a port name;
    raises ValueError saying what is expected."""
    if option in ENUM_OPTIONS:
        names = ENUM_OPTIONS[option]
        if isinstance(value, str) and value in names:
            return value
        try:
            return names[parse_uint(value)]
        except (ValueError, IndexError):
            raise ValueError(f"{value!r} is not one of {', '.join(names)}") from None
    if option in INT_OPTIONS:
        number = parse_uint(value)
        low, high = INT_RANGES[option]
        if not low <= number <= high:
            raise ValueError(f"{value!r} is not between {low} and {high}")
        return number
    if option in BOOL_OPTIONS:
        if isinstance(value, bool):
            return value
        if value in (0, 1, "0", "1", "true", "false"):
            return value in (1, "1", "true")
        raise ValueError(f"{value!r} is not a boolean")
    if option == "primary":
        if isinstance(value, str) and 0 < len(value) <= 15:
            return value
        raise ValueError(f"{value!r} is not an interface name")
    raise ValueError("unknown bond option")


def _kernel_value(option: str, value: Any, names: dict[str, int]) -> int:
    if option in ENUM_OPTIONS:
        return ENUM_OPTIONS[option].index(value)
    if option == "primary":
        if value not in names:
            raise CNIError(f"cannot make {value} the primary port: no such interface")
        return names[value]
    return int(value)


def _fail(what: str, e: NetlinkError) -> CNIError:
    reason = e.args[1] if len(e.args) > 1 else str(e)
    if e.code in (errno.EOPNOTSUPP, errno.ENOTSUP):
        return CNIError(f"{what}: this kernel lacks bond links (CONFIG_BONDING)", reason)
    return CNIError(what, f"{reason} (errno {e.code})")


def create(ipr: IPRoute, name: str, mode: str, *, mac: str = "", mtu: int = 0) -> None:
    spec: dict[str, Any] = {"ifname": name, "kind": "bond", "bond_mode": MODES.index(mode)}
    if mac:
        spec["address"] = mac
    if mtu:
        spec["mtu"] = mtu
    try:
        ipr.link("add", **spec)
    except NetlinkError as e:
        if e.code == errno.EEXIST:
            raise CNIError(f"cannot create bond {name}: an interface with that name "
                           "exists") from e
        raise _fail(f"cannot create bond {name}", e) from e


def read(data: dict[str, Any], names: dict[int, str]) -> tuple[str, dict[str, Any]]:
    """(mode, options) from a bond's IFLA_INFO_DATA (`links.Link.data`); `names` maps
    ifindexes to names (for `primary`)."""
    mode = data.get("IFLA_BOND_MODE")
    out: dict[str, Any] = {}
    for option in OPTIONS:
        value = data.get(attr(option))
        if value is None:
            continue
        if option in ENUM_OPTIONS:
            names_of = ENUM_OPTIONS[option]
            if int(value) < len(names_of):
                out[option] = names_of[int(value)]
        elif option in BOOL_OPTIONS:
            out[option] = bool(value)
        elif option == "primary":
            if value and value in names:
                out[option] = names[value]
        else:
            out[option] = int(value)
    mode_text = MODES[mode] if isinstance(mode, int) and mode < len(MODES) else "unknown"
    return mode_text, dict(sorted(out.items()))


def set_mode(ipr: IPRoute, index: int, mode: str) -> None:
    """The kernel changes the mode only of a bond that is down and has no ports."""
    try:
        ipr.link("set", index=index, kind="bond", bond_mode=MODES.index(mode))
    except NetlinkError as e:
        raise _fail(f"cannot set bond mode {mode} on link {index}", e) from e


def set_options(ipr: IPRoute, index: int, options: dict[str, Any],
                names: dict[str, int]) -> None:
    """Set options (normalised values) one by one, so an error names the option. Some
    (lacp_rate, ad_select, …) the kernel changes only while the bond is down (EBUSY):
    those are set with the bond down for a moment."""
    for option, value in options.items():
        request = {f"bond_{attr(option)[len('IFLA_BOND_'):].lower()}":
                   _kernel_value(option, value, names)}
        try:
            try:
                ipr.link("set", index=index, kind="bond", **request)
            except NetlinkError as e:
                if e.code != errno.EBUSY:
                    raise
                was_up = bool(ipr.get_links(index)[0]["flags"] & 1)
                ipr.link("set", index=index, state="down")
                try:
                    ipr.link("set", index=index, kind="bond", **request)
                finally:
                    if was_up:
                        ipr.link("set", index=index, state="up")
        except NetlinkError as e:
            raise _fail(f"cannot set bond option {option}={value} on link {index}", e) from e
