"""host-local IPAM: addresses from node-local range sets, stored on disk like the reference.

Config (inside `ipam`): `subnet`/`rangeStart`/`rangeEnd`/`gateway` (one range, the old
shorthand) and/or `ranges` (a list of range sets, each a list of ranges), `routes`,
`dataDir`, `resolvConf`. Requested addresses come from `CNI_ARGS IP=`, `args.cni.ips`
and `runtimeConfig.ips`; `runtimeConfig.ipRanges` prepends range sets. One address is
allocated per range set.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any

from multihome.cni import version as ver
from multihome.cni.args import load_cni_args
from multihome.cni.errors import CNIError, InvalidConfig, NotAvailable
from multihome.cni.result import DNS, IPConfig, Result, Route
from multihome.cni.skel import Call
from multihome.cni.types import NetConf
from multihome.ipam import config as cfgmod
from multihome.ipam.disk_store import DEFAULT_DATA_DIR, Store
from multihome.ipam.ranges import (
    IPAddress,
    RangeSet,
    check_no_overlap,
    parse_range,
    parse_range_set,
)

SUPPORTED_VERSIONS: tuple[str, ...] = ver.ALL_VERSIONS


@dataclass
class HostLocalConfig:
    name: str
    cni_version: str
    data_dir: str
    range_sets: list[RangeSet]
    routes: list[Route] = field(default_factory=list)
    resolv_conf: str = ""
    requested: list[IPAddress] = field(default_factory=list)


def _data_dir(ipam: dict[str, Any]) -> str:
    return cfgmod.path_key(ipam, "dataDir") or DEFAULT_DATA_DIR


def _range_sets(conf: NetConf, ipam: dict[str, Any]) -> list[RangeSet]:
    """Runtime ipRanges first, then the shorthand range, then `ranges` (the reference's
    order: the position of a set is the N of its last_reserved_ip.N file)."""
    sets: list[RangeSet] = []
    runtime = conf.runtime_config.get("ipRanges")
    if runtime is not None:
        if not isinstance(runtime, list):
            raise InvalidConfig("runtimeConfig 'ipRanges' must be a list of range sets")
        sets += [parse_range_set(s, f"runtimeConfig 'ipRanges' set {i}")
                 for i, s in enumerate(runtime)]
    if ipam.get("subnet") not in (None, ""):
        sets.append(RangeSet((parse_range(ipam, "ipam"),)))
    ranges = ipam.get("ranges")
    if ranges is not None:
        if not isinstance(ranges, list):
            raise InvalidConfig("ipam 'ranges' must be a list of range sets "
                                "(each a list of {subnet, rangeStart, rangeEnd, gateway})")
        sets += [parse_range_set(s, f"ipam 'ranges' set {i}") for i, s in enumerate(ranges)]
    if not sets:
        raise InvalidConfig("ipam has no IP ranges: set 'subnet' or 'ranges'")
    check_no_overlap(sets)
    return sets


def load(conf: NetConf, cni_args_ip: str | None) -> HostLocalConfig:
    ipam = cfgmod.ipam_section(conf)
    range_sets = _range_sets(conf, ipam)
    cfgmod.check_per_family_limit(conf.cni_version, [rs.family for rs in range_sets])
    return HostLocalConfig(
        name=conf.name,
        cni_version=conf.cni_version,
        data_dir=_data_dir(ipam),
        range_sets=range_sets,
        routes=cfgmod.parse_routes(ipam.get("routes")),
        resolv_conf=cfgmod.path_key(ipam, "resolvConf"),
        requested=cfgmod.requested_addresses(conf, cni_args_ip),
    )


def _ipconfig(ip: IPAddress, rs: RangeSet) -> IPConfig:
    r = rs.range_for(ip)
    assert r is not None  # callers only pass addresses of the set
    return IPConfig(address=ipaddress.ip_interface(f"{ip}/{r.subnet.prefixlen}"),
                    gateway=r.gateway)


def _allocate_requested(store: Store, rs: RangeSet, idx: int, cid: str, ifname: str,
                        ip: IPAddress) -> IPConfig:
    r = rs.range_for(ip)
    assert r is not None
    if ip == r.gateway:
        raise InvalidConfig(f"requested IP {ip} is the gateway of {r.subnet}")
    if r.reserved(ip):
        raise InvalidConfig(f"requested IP {ip} is the network or broadcast address of "
                            f"{r.subnet}")
    if not store.reserve(cid, ifname, ip, idx):
        holder = next((a for a in store.allocations() if a.ip == ip), None)
        who = f" (held by container {holder.container_id} {holder.ifname})".rstrip() \
            if holder else ""
        raise CNIError(f"requested IP address {ip} is not available in range set {rs}{who}")
    return _ipconfig(ip, rs)


def _allocate_next(store: Store, rs: RangeSet, idx: int, cid: str, ifname: str) -> IPConfig:
    allocations = store.allocations()
    for a in allocations:
        if a.owned_by(cid, ifname) and rs.contains(a.ip):
            raise CNIError(f"{a.ip} has been allocated to container {cid} interface {ifname}, "
                           "duplicate allocation is not allowed")
    # Skip addresses known to be taken without an open() each; reserve() still uses
    # O_EXCL, so a file appearing meanwhile (a non-locking writer) is not overwritten.
    taken = {a.ip for a in allocations}
    for ip, _r in rs.candidates(store.last_reserved(idx)):
        if ip in taken:
            continue
        if store.reserve(cid, ifname, ip, idx):
            return _ipconfig(ip, rs)
    raise CNIError(f"no IP addresses available in range set {rs}")


def _env_ip(call: Call) -> str | None:
    """CNI_ARGS IP=, read as strictly as the reference (unknown keys need IgnoreUnknown=1)."""
    return load_cni_args(call.cmd, ("IP",)).get("IP")


def add(call: Call) -> Result:
    cfg = load(call.conf, _env_ip(call))
    dns = cfgmod.parse_resolv_conf(cfg.resolv_conf) if cfg.resolv_conf else DNS()
    pending = list(cfg.requested)
    wanted: list[IPAddress | None] = []
    for rs in cfg.range_sets:
        req = next((ip for ip in pending if rs.contains(ip)), None)
        if req is not None:
            pending.remove(req)
        wanted.append(req)
    if pending:
        raise InvalidConfig(
            "requested IPs are not inside any range set of network "
            f"{cfg.name}: {', '.join(str(ip) for ip in pending)}"
        )
    cid, ifname = call.cmd.container_id, call.cmd.ifname
    store = Store(cfg.data_dir, cfg.name)
    ips: list[IPConfig] = []
    with store.locked():
        try:
            for idx, (rs, req) in enumerate(zip(cfg.range_sets, wanted, strict=True)):
                if req is not None:
                    ips.append(_allocate_requested(store, rs, idx, cid, ifname, req))
                else:
                    ips.append(_allocate_next(store, rs, idx, cid, ifname))
        except BaseException:
            # Undo only what this call took; earlier allocations of the owner stay.
            for done in ips:
                for a in store.allocations():
                    if a.ip == done.address.ip and a.owned_by(cid, ifname):
                        store.release(a)
            raise
    return Result(cni_version=cfg.cni_version, ips=ips, routes=cfg.routes, dns=dns)


def _lenient_store(conf: NetConf) -> Store | None:
    """The store for DEL and GC: only `dataDir` has to make sense, so that a config
    whose ranges were edited or broken since ADD can still release its addresses."""
    ipam = cfgmod.ipam_section(conf)
    store = Store(_data_dir(ipam), conf.name, create=False)
    return store if store.exists else None


def delete(call: Call) -> None:
    store = _lenient_store(call.conf)
    if store is None:
        return
    with store.locked():
        store.release_owner(call.cmd.container_id, call.cmd.ifname)


def check(call: Call) -> None:
    cfg = load(call.conf, _env_ip(call))
    cid, ifname = call.cmd.container_id, call.cmd.ifname
    store = Store(cfg.data_dir, cfg.name, create=False)
    owned = []
    if store.exists:
        with store.locked():
            owned = store.owned(cid, ifname)
    if not owned:
        raise CNIError(f"host-local: no address is allocated to container {cid} interface "
                       f"{ifname} in network {cfg.name}")
    prev = call.conf.prev_result
    if prev is None:
        return
    held = {a.ip for a in owned}
    for ipc in prev.ips:
        ip = ipc.address.ip
        if any(rs.contains(ip) for rs in cfg.range_sets) and ip not in held:
            raise CNIError(f"host-local: address {ip} of the previous result is not allocated "
                           f"to container {cid} interface {ifname}")


def gc(call: Call) -> None:
    valid = cfgmod.valid_attachments(call.conf)
    if valid is None:
        # Without the list we cannot tell leaks from live attachments: free nothing.
        return
    store = _lenient_store(call.conf)
    if store is None:
        return
    valid_ids = {cid for cid, _ in valid}
    with store.locked():
        for a in store.allocations():
            # Files of the old ID-only format are kept while the container has any attachment.
            alive = (a.container_id, a.ifname) in valid if a.ifname else \
                a.container_id in valid_ids
            if not alive:
                store.release(a)


def status(call: Call) -> None:
    cfg = load(call.conf, None)
    try:
        os.makedirs(cfg.data_dir, mode=0o755, exist_ok=True)
    except OSError as e:
        raise NotAvailable(f"host-local data directory {cfg.data_dir} cannot be created",
                           str(e)) from e
    if not os.access(cfg.data_dir, os.W_OK | os.X_OK):
        raise NotAvailable(f"host-local data directory {cfg.data_dir} is not writable")
    if cfg.name:
        net_dir = os.path.join(cfg.data_dir, cfg.name)
        if os.path.exists(net_dir) and not os.access(net_dir, os.W_OK | os.X_OK):
            raise NotAvailable(f"host-local data directory {net_dir} is not writable")
