"""Parsing shared by the IPAM plugins: the `ipam` object, routes, DNS, requested addresses.

Everything here turns a malformed value into InvalidConfig (code 7) with a sentence
naming the key, never another exception.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from multihome import paths
from multihome.cni import version as ver
from multihome.cni.errors import DecodingFailure, InvalidConfig
from multihome.cni.result import DNS, IPConfig, Route
from multihome.cni.types import NetConf
from multihome.ipam.ranges import IPAddress, parse_ip


def ipam_section(conf: NetConf) -> dict[str, Any]:
    if conf.ipam is None:
        raise InvalidConfig("IPAM config missing 'ipam' key")
    return conf.ipam


def string_key(obj: dict[str, Any], key: str, where: str = "ipam") -> str:
    value = obj.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidConfig(f"{where} '{key}' must be a string, got {value!r}")
    return value


def absolute_path(value: str, what: str) -> str:
    """A path from a config must be absolute: a relative one would be resolved against
    the working directory of whoever runs the plugin (the daemon, a runtime), which no
    config author can know. A NUL byte is refused too (no syscall takes it)."""
    if value and (not value.startswith("/") or "\0" in value):
        raise InvalidConfig(f"{what} {value!r} must be an absolute path (starting with /)")
    if value and not paths.config_path_allowed(value):
        roots = ":".join(paths.config_path_roots())
        raise InvalidConfig(f"{what} {value[:200]!r} is outside the paths this node lets "
                            f"network configs name ({paths.CONFIG_PATH_ROOTS_ENV}={roots})")
    return value


def path_key(obj: dict[str, Any], key: str, where: str = "ipam") -> str:
    """A string key holding a path: "" when unset, else an absolute path."""
    return absolute_path(string_key(obj, key, where), f"{where} '{key}'")


def parse_routes(raw: Any, where: str = "ipam 'routes'") -> list[Route]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidConfig(f"{where} must be a list of {{dst, gw}} objects, got {raw!r}")
    routes: list[Route] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidConfig(f"{where} entry {i} must be an object, got {item!r}")
        dst = item.get("dst")
        if not isinstance(dst, str):
            raise InvalidConfig(f"{where} entry {i} needs 'dst' as a CIDR string, got {dst!r}")
        try:
            ipaddress.ip_network(dst, strict=False)
        except ValueError as e:
            raise InvalidConfig(f"{where} entry {i} 'dst' {dst!r} is not a valid CIDR") from e
        if "/" not in dst:
            raise InvalidConfig(f"{where} entry {i} 'dst' {dst!r} is missing a prefix length")
        gw = item.get("gw")
        if gw is not None and gw != "":
            parse_ip(gw, f"{where} entry {i} 'gw'")
            if "/" in str(gw):
                raise InvalidConfig(f"{where} entry {i} 'gw' {gw!r} must be an address, not a CIDR")
        for key in ("mtu", "advmss", "priority", "table", "scope"):
            value = item.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise InvalidConfig(f"{where} entry {i} '{key}' must be an integer")
        try:
            routes.append(Route.from_dict(item))
        except DecodingFailure as e:
            raise InvalidConfig(f"{where} entry {i} is invalid: {e.msg}") from e
    return routes


def parse_dns(raw: Any, where: str = "ipam 'dns'") -> DNS:
    if raw is None:
        return DNS()
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{where} must be an object, got {raw!r}")

    def strings(key: str) -> list[str]:
        value = raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise InvalidConfig(f"{where} '{key}' must be a list of strings")
        return list(value)

    domain = raw.get("domain", "")
    if domain is None:
        domain = ""
    if not isinstance(domain, str):
        raise InvalidConfig(f"{where} 'domain' must be a string")
    return DNS(strings("nameservers"), domain, strings("search"), strings("options"))


def parse_resolv_conf(path: str) -> DNS:
    """nameserver/domain/search/options of a resolv.conf, as the reference reads it."""
    try:
        text = paths.read_bounded(path).decode("utf-8", errors="replace")
    except (OSError, ValueError) as e:
        raise InvalidConfig(f"ipam 'resolvConf' {path!r} cannot be read: {e}") from e
    return parse_resolv_text(text)


def parse_resolv_text(text: str) -> DNS:
    """nameserver/domain/search/options of resolv.conf text (the node's DNS reads it too)."""
    dns = DNS()
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver":
            dns.nameservers.append(values[0])
        elif key == "domain":
            dns.domain = values[0]
        elif key == "search":
            dns.search.extend(values)
        elif key == "options":
            dns.options.extend(values)
    return dns


def _string_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidConfig(f"{where} must be a list of strings, got {value!r}")
    return list(value)


def args_cni_ips(conf: NetConf) -> list[str]:
    return _string_list(conf.cni_args.get("ips"), "args.cni 'ips'")


def runtime_ips(conf: NetConf) -> list[str]:
    return _string_list(conf.runtime_config.get("ips"), "runtimeConfig 'ips'")


def requested_addresses(conf: NetConf, cni_args_ip: str | None) -> list[IPAddress]:
    """host-local's requested IPs, in the reference order: CNI_ARGS IP=, args.cni.ips,
    runtimeConfig.ips; duplicates dropped."""
    texts: list[tuple[str, str]] = []
    if cni_args_ip:
        texts += [(t, "CNI_ARGS IP") for t in cni_args_ip.split(",") if t.strip()]
    texts += [(t, "args.cni 'ips' entry") for t in args_cni_ips(conf)]
    texts += [(t, "runtimeConfig 'ips' entry") for t in runtime_ips(conf)]
    out: list[IPAddress] = []
    for text, what in texts:
        ip = parse_ip(text, what)
        if ip not in out:
            out.append(ip)
    return out


def check_per_family_limit(cni_version: str, ips: list[IPConfig] | list[int]) -> None:
    """Spec 0.2.0 and older results hold one address per family."""
    if ver.at_least(cni_version, "0.3.0"):
        return
    families = [x.family if isinstance(x, IPConfig) else x for x in ips]
    if families.count(4) > 1 or families.count(6) > 1:
        raise InvalidConfig(
            f"cniVersion {cni_version} does not support more than 1 address per family; "
            "use cniVersion 0.3.0 or later"
        )


def valid_attachments(conf: NetConf) -> set[tuple[str, str]] | None:
    """(containerID, ifname) pairs still in use; None when the runtime gave no list."""
    raw = conf.raw.get("cni.dev/valid-attachments")
    key = "cni.dev/valid-attachments"
    if raw is None:
        raw, key = conf.raw.get("cni.dev/attachments"), "cni.dev/attachments"
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidConfig(f"'{key}' must be a list of {{containerID, ifname}} objects")
    valid: set[tuple[str, str]] = set()
    for i, item in enumerate(raw):
        cid = item.get("containerID") if isinstance(item, dict) else None
        ifname = item.get("ifname") if isinstance(item, dict) else None
        if not isinstance(cid, str) or not isinstance(ifname, str):
            raise InvalidConfig(f"'{key}' entry {i} needs string 'containerID' and 'ifname'")
        valid.add((cid.strip(), ifname))
    return valid
