"""static IPAM: the addresses, routes and DNS written in the config, nothing stored.

Like the reference plugin: `CNI_ARGS IP=` (comma-separated CIDRs) adds addresses and
`GATEWAY=` sets the gateway of those that contain it; `args.cni.ips` and then
`runtimeConfig.ips` replace the address list when given.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from multihome.cni import version as ver
from multihome.cni.args import load_cni_args
from multihome.cni.errors import CNIError, InvalidConfig
from multihome.cni.result import IPConfig, Result
from multihome.cni.skel import Call
from multihome.cni.types import NetConf
from multihome.ipam import config as cfgmod
from multihome.ipam.ranges import parse_ip

SUPPORTED_VERSIONS: tuple[str, ...] = ver.ALL_VERSIONS


def _cidr(value: Any, what: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if not isinstance(value, str) or "/" not in value:
        raise InvalidConfig(f"{what} must be an address in CIDR notation such as "
                            f"10.1.2.3/24, got {value!r}")
    try:
        return ipaddress.ip_interface(value.strip())
    except ValueError as e:
        raise InvalidConfig(f"{what} {value!r} is not a valid CIDR address") from e


def _config_addresses(ipam: dict[str, Any]) -> list[IPConfig]:
    raw = ipam.get("addresses")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidConfig("ipam 'addresses' must be a list of {address, gateway} objects")
    out: list[IPConfig] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidConfig(f"ipam 'addresses' entry {i} must be an object, got {item!r}")
        address = _cidr(item.get("address"), f"ipam 'addresses' entry {i} 'address'")
        gw = item.get("gateway")
        gateway = None
        if gw is not None and gw != "":
            if isinstance(gw, str) and "/" in gw:
                raise InvalidConfig(f"ipam 'addresses' entry {i} 'gateway' {gw!r} must be an "
                                    "address, not a CIDR")
            gateway = parse_ip(gw, f"ipam 'addresses' entry {i} 'gateway'")
            if gateway.version != address.version:
                raise InvalidConfig(f"ipam 'addresses' entry {i}: gateway {gateway} is not the "
                                    f"same IP family as {address}")
        out.append(IPConfig(address=address, gateway=gateway))
    return out


def addresses(conf: NetConf, cni_args_ip: str | None, cni_args_gw: str | None) -> list[IPConfig]:
    ipam = cfgmod.ipam_section(conf)
    out = _config_addresses(ipam)
    from_env: list[IPConfig] = []
    if cni_args_ip:
        from_env = [IPConfig(address=_cidr(t.strip(), "CNI_ARGS IP entry"))
                    for t in cni_args_ip.split(",") if t.strip()]
    if cni_args_gw:
        for text in cni_args_gw.split(","):
            if not text.strip():
                continue
            gw = parse_ip(text.strip(), "CNI_ARGS GATEWAY entry")
            for ipc in from_env:
                if gw in ipc.address.network:
                    ipc.gateway = gw
    out += from_env
    cni_ips = cfgmod.args_cni_ips(conf)
    if cni_ips:
        out = [IPConfig(address=_cidr(t, "args.cni 'ips' entry")) for t in cni_ips]
    rt_ips = cfgmod.runtime_ips(conf)
    if rt_ips:
        out = [IPConfig(address=_cidr(t, "runtimeConfig 'ips' entry")) for t in rt_ips]
    cfgmod.check_per_family_limit(conf.cni_version, out)
    return out


def _env_addresses(call: Call) -> list[IPConfig]:
    """addresses() with CNI_ARGS IP= and GATEWAY=, read as strictly as the reference does
    (an unknown key needs IgnoreUnknown=1; IgnoreUnknown must be a boolean)."""
    env = load_cni_args(call.cmd, ("IP", "GATEWAY"))
    return addresses(call.conf, env.get("IP"), env.get("GATEWAY"))


def add(call: Call) -> Result:
    conf = call.conf
    ips = _env_addresses(call)
    if not ips and not ver.at_least(conf.cni_version, "0.3.0"):
        raise InvalidConfig(f"ipam has no 'addresses', and a cniVersion {conf.cni_version} "
                            "result must carry one; add an address or use cniVersion 0.3.0 "
                            "or later")
    ipam = cfgmod.ipam_section(conf)
    return Result(cni_version=conf.cni_version, ips=ips,
                  routes=cfgmod.parse_routes(ipam.get("routes")),
                  dns=cfgmod.parse_dns(ipam.get("dns")))


def delete(call: Call) -> None:
    """Nothing was allocated, so nothing to free (and a broken config must not block DEL)."""


def check(call: Call) -> None:
    conf = call.conf
    ips = _env_addresses(call)
    prev = conf.prev_result
    if prev is None:
        raise InvalidConfig("static: CHECK needs 'prevResult' in the config")
    for want in ips:
        got = next((p for p in prev.ips if p.address.ip == want.address.ip), None)
        if got is None:
            raise CNIError(f"static: address {want.address} is missing from the previous "
                           f"result of interface {call.cmd.ifname}")
        if want.gateway is not None and got.gateway != want.gateway:
            raise CNIError(f"static: address {want.address} has gateway {got.gateway} in the "
                           f"previous result, config says {want.gateway}")


def status(call: Call) -> None:
    """static needs no resources: always ready once the config parses."""
    addresses(call.conf, None, None)


def gc(call: Call) -> None:
    """No state, nothing to collect."""
