"""Typed reads of plugin config keys, with errors naming the plugin and the key."""

from __future__ import annotations

from typing import Any

from multihome.cni.args import parse_mac, requested_mac
from multihome.cni.errors import InvalidConfig, InvalidEnvironment
from multihome.cni.skel import Call
from multihome.cni.types import validate_ifname
from multihome.ipam.config import absolute_path

MAX_MTU = 65535


def get_bool(raw: dict[str, Any], key: str, plugin: str, default: bool = False) -> bool:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidConfig(f"{plugin} config key {key!r} must be true or false, got {value!r}")
    return value


def get_int(raw: dict[str, Any], key: str, plugin: str) -> int:
    value = raw.get(key, 0)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidConfig(f"{plugin} config key {key!r} must be an integer, got {value!r}")
    return value


def get_str(raw: dict[str, Any], key: str, plugin: str) -> str:
    value = raw.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidConfig(f"{plugin} config key {key!r} must be a string, got {value!r}")
    return value


def get_path(raw: dict[str, Any], key: str, plugin: str) -> str:
    """A key holding a file or directory path: "" when unset, else an absolute path."""
    return absolute_path(get_str(raw, key, plugin), f"{plugin} config key {key!r}")


def get_mtu(raw: dict[str, Any], plugin: str) -> int:
    mtu = get_int(raw, "mtu", plugin)
    if not 0 <= mtu <= MAX_MTU:
        raise InvalidConfig(f"invalid mtu {mtu}: must be between 0 and {MAX_MTU}")
    return mtu


def get_ifname(raw: dict[str, Any], key: str, plugin: str) -> str:
    """An interface-name key (master, bridge…): empty when unset, else a valid name."""
    name = get_str(raw, key, plugin)
    if name:
        try:
            validate_ifname(name)
        except InvalidEnvironment as e:
            raise InvalidConfig(f"invalid {plugin} {key!r}: {e.msg}") from e
    return name


def get_choice(raw: dict[str, Any], key: str, plugin: str, choices: tuple[str, ...],
               default: str) -> str:
    value = get_str(raw, key, plugin) or default
    if value not in choices:
        raise InvalidConfig(f"unknown {plugin} {key} {value!r}: expected one of "
                            f"{', '.join(choices)}")
    return value


def get_mac(call: Call, plugin: str) -> str:
    """The MAC to use at ADD: runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC= > `mac` key.

    Other commands get "": only ADD sets a MAC, and DEL must work whatever CNI_ARGS holds.
    """
    if call.cmd.command != "ADD":
        return ""
    requested = requested_mac(call, known_args=("MAC", "IP"))
    if requested:
        return requested
    mac = get_str(call.conf.raw, "mac", plugin)
    return parse_mac(mac, f"{plugin} mac") if mac else ""


def ipam_type(call: Call) -> str:
    """The `ipam.type` to delegate to, or "" when the config has no IPAM section."""
    if call.conf.ipam is None:
        return ""
    t = call.conf.ipam.get("type", "")
    if not isinstance(t, str):
        raise InvalidConfig("ipam 'type' must be a string")
    return t
