"""Is the desired state contained in the current one? Used after apply and after rollback.

Only the keys the desired state names are compared (partial state); address lists and
bridge port lists, when given, must match exactly, as nmstate treats them.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from multihome.node import current, schema


def _norm_route(route: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in route.items() if k != "state"}
    if "destination" in out:
        out["destination"] = str(ipaddress.ip_network(out["destination"], strict=False))
    if out.get("next-hop-address"):
        out["next-hop-address"] = str(ipaddress.ip_address(out["next-hop-address"]))
    else:
        out.pop("next-hop-address", None)
    return out


def route_matches(wanted: dict[str, Any], have: dict[str, Any]) -> bool:
    """Every field `wanted` names has the same value in `have`."""
    w, h = _norm_route(wanted), _norm_route(have)
    if "next-hop-address" not in wanted or not wanted.get("next-hop-address"):
        w.pop("next-hop-address", None)
    return all(h.get(k) == v for k, v in w.items())


def _addresses(section: dict[str, Any]) -> set[str]:
    return {str(ipaddress.ip_interface(f"{a['ip']}/{a['prefix-length']}"))
            for a in section.get("address") or []}


def port_vlan_norm(vlan: dict[str, Any] | None) -> dict[str, Any] | None:
    if not vlan:
        return None
    mode = vlan.get("mode", "access" if "tag" in vlan else "trunk")
    if mode == "access":
        return {"mode": "access", "tag": vlan["tag"]}
    native = vlan.get("tag") if vlan.get("enable-native") else None
    return {"mode": "trunk", "ids": schema.trunk_ids(vlan), "native": native}


def iface_differences(want: dict[str, Any], have: dict[str, Any] | None) -> list[str]:
    """What of `want` the current interface `have` does not show (empty: contained)."""
    name = want["name"]
    if want.get("state") == "absent":
        if have is not None and have["type"] in schema.VIRTUAL_TYPES:
            return [f"{name} still exists"]
        return []
    if have is None:
        return [f"{name} does not exist"]
    out: list[str] = []
    if want.get("type") not in (None, "unknown", have["type"]):
        out.append(f"{name} is a {have['type']}, not a {want['type']}")
    for key in ("state", "mtu"):
        if key in want and want[key] != have.get(key):
            out.append(f"{name}.{key} is {have.get(key)}, wanted {want[key]}")
    if "mac-address" in want and want["mac-address"].upper() != have["mac-address"].upper():
        out.append(f"{name}.mac-address is {have['mac-address']}, wanted {want['mac-address']}")
    for family in ("ipv4", "ipv6"):
        sec = want.get(family)
        if not sec:
            continue
        got = _addresses(have[family])
        if sec.get("enabled") is False:
            wanted: set[str] = set()
        elif "address" in sec:
            wanted = _addresses(sec)
        else:
            continue
        if got != wanted:
            out.append(f"{name}.{family} addresses are {sorted(got)}, wanted {sorted(wanted)}")
    for section in ("vlan", "mac-vlan", "veth"):
        for key, value in (want.get(section) or {}).items():
            if key in ("protocol", "promiscuous"):
                continue
            if (have.get(section) or {}).get(key) != value:
                out.append(f"{name}.{section}.{key} is "
                           f"{(have.get(section) or {}).get(key)}, wanted {value}")
    out += _bridge_differences(name, want.get("bridge"), have.get("bridge") or {})
    return out


def _bridge_differences(name: str, want: dict[str, Any] | None,
                        have: dict[str, Any]) -> list[str]:
    if not want:
        return []
    out: list[str] = []
    stp = ((want.get("options") or {}).get("stp") or {}).get("enabled")
    if stp is not None and stp != have.get("options", {}).get("stp", {}).get("enabled"):
        out.append(f"{name}.bridge.options.stp.enabled is not {stp}")
    if "port" in want:
        have_ports = {p["name"]: p for p in have.get("port") or []}
        want_ports = {p["name"]: p for p in want["port"]}
        if set(have_ports) != set(want_ports):
            out.append(f"{name}.bridge.port is {sorted(have_ports)}, wanted {sorted(want_ports)}")
        for pname, port in want_ports.items():
            wv = port_vlan_norm(port.get("vlan"))
            if wv is not None and pname in have_ports and \
                    wv != port_vlan_norm(have_ports[pname].get("vlan")):
                out.append(f"{name}.bridge.port {pname} vlan is "
                           f"{have_ports[pname].get('vlan')}, wanted {port['vlan']}")
    return out


def differences(desired: dict[str, Any], now: dict[str, Any]) -> list[str]:
    have = {i["name"]: i for i in now.get("interfaces") or []}
    out: list[str] = []
    for want in schema.interfaces(desired):
        out += iface_differences(want, have.get(want["name"]))
    configured = schema.route_config(now)
    for route in schema.route_config(desired):
        present = any(route_matches(route, r) for r in configured)
        if route.get("state") == "absent" and present:
            out.append(f"route {_norm_route(route)} is still there")
        elif route.get("state") != "absent" and not present:
            out.append(f"route {_norm_route(route)} is missing")
    return out


def contained(desired: dict[str, Any], netns_path: str | None, *, tries: int = 5,
              pause: float = 0.5) -> list[str]:
    """Re-read until the desired state shows (nmstate retries too); the last differences."""
    diffs: list[str] = []
    for attempt in range(tries):
        diffs = differences(desired, current.show(netns_path))
        if not diffs:
            return []
        if attempt + 1 < tries:
            time.sleep(pause)
    return diffs
