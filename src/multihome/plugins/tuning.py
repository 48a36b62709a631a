"""The tuning plugin (also `cnv-tuning`): chained after an interface plugin, it changes
sysctls and link settings of CNI_IFNAME and puts the originals back on DEL.

Keys: sysctl (net.* only; when the allow-list file exists each key must match one of its
regular expressions), mac (also runtimeConfig.mac, args.cni.mac, CNI_ARGS MAC=), mtu,
promisc, allmulti, txQLen, dataDir (where the originals are kept, default /run/cni/tuning).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from multihome.cni import version as ver
from multihome.cni.errors import CNIError, InvalidConfig
from multihome.cni.result import Result
from multihome.cni.skel import Call
from multihome.net import links, netns, sysctl
from multihome.net.netns import Netlink, netlink
from multihome.plugins import conf_keys, state_file

SUPPORTED_VERSIONS = ver.ALL_VERSIONS
PLUGIN = "tuning"
DEFAULT_DATA_DIR = "/run/cni/tuning"
DEFAULT_ALLOWLIST = "/etc/cni/tuning/allowlist.conf"
ENV_ALLOWLIST = "MH_TUNING_ALLOWLIST"


MAX_TXQLEN = 2**32 - 1  # IFLA_TXQLEN is a u32


@dataclass(frozen=True)
class TuningConf:
    sysctls: dict[str, str] = field(default_factory=dict)
    mac: str = ""
    mtu: int = 0
    promisc: bool | None = None
    allmulti: bool | None = None
    txqlen: int | None = None
    data_dir: str = DEFAULT_DATA_DIR


def _allowlist() -> list[re.Pattern[str]] | None:
    path = os.environ.get(ENV_ALLOWLIST) or DEFAULT_ALLOWLIST
    try:
        lines = open(path).read().splitlines()  # noqa: SIM115 - tiny file, read at once
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CNIError(f"cannot read the tuning sysctl allow-list {path}", str(e)) from e
    return [re.compile(line.strip()) for line in lines if line.strip()
            and not line.strip().startswith("#")]


def _sysctls(raw: dict[str, Any]) -> dict[str, str]:
    value = raw.get("sysctl") or {}
    if not isinstance(value, dict):
        raise InvalidConfig("tuning 'sysctl' must be an object of key: value strings")
    allow = _allowlist()
    out: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(val, str):
            raise InvalidConfig(f"tuning sysctl {key!r} value must be a string, got {val!r}")
        dotted = key.replace("/", ".")
        if not dotted.startswith("net.") or ".." in dotted:
            raise InvalidConfig(f"tuning sysctl {key!r} is not allowed: only net.* keys "
                                "are namespaced")
        if allow is not None and not any(p.fullmatch(dotted) for p in allow):
            raise InvalidConfig(f"tuning sysctl {key!r} is not in the allow-list")
        out[key] = val
    return out


def _opt_bool(raw: dict[str, Any], key: str) -> bool | None:
    return conf_keys.get_bool(raw, key, PLUGIN) if raw.get(key) is not None else None


def parse(call: Call) -> TuningConf:
    raw = call.conf.raw
    mac = conf_keys.get_mac(call, PLUGIN)
    txqlen = conf_keys.get_int(raw, "txQLen", PLUGIN) if raw.get("txQLen") is not None \
        else None
    if txqlen is not None and not 0 <= txqlen <= MAX_TXQLEN:
        raise InvalidConfig(f"invalid txQLen {txqlen}: must be between 0 and {MAX_TXQLEN}")
    return TuningConf(sysctls=_sysctls(raw), mac=mac,
                      mtu=conf_keys.get_mtu(raw, PLUGIN), promisc=_opt_bool(raw, "promisc"),
                      allmulti=_opt_bool(raw, "allmulti"), txqlen=txqlen,
                      data_dir=conf_keys.get_path(raw, "dataDir", PLUGIN) or DEFAULT_DATA_DIR)


def _snapshot(link: links.Link, conf: TuningConf) -> dict[str, Any]:
    """The current values of exactly what `conf` is about to change."""
    state: dict[str, Any] = {"sysctl": {k: sysctl.read(k) for k in conf.sysctls}}
    if conf.mac:
        state["mac"] = link.mac
    if conf.mtu:
        state["mtu"] = link.mtu
    if conf.promisc is not None:
        state["promisc"] = link.promisc
    if conf.allmulti is not None:
        state["allmulti"] = link.allmulti
    if conf.txqlen is not None:
        state["txQLen"] = link.txqlen
    return state


def _apply(ipr: Netlink, link: links.Link, values: dict[str, Any]) -> None:
    """Set sysctls and link settings (thread inside the container netns)."""
    for key, value in values.get("sysctl", {}).items():
        sysctl.write(key, value)
    if values.get("mac"):
        # Many drivers refuse a MAC change while up, as the reference assumes.
        links.set_down(ipr, link.index)
        links.set_mac(ipr, link.index, values["mac"])
        if link.up:
            links.set_up(ipr, link.index)
    if values.get("mtu"):
        links.set_mtu(ipr, link.index, values["mtu"])
    if values.get("promisc") is not None:
        links.set_promisc(ipr, link.index, values["promisc"])
    if values.get("allmulti") is not None:
        links.set_allmulti(ipr, link.index, values["allmulti"])
    if values.get("txQLen") is not None:
        links.set_txqlen(ipr, link.index, values["txQLen"])


def _wanted(conf: TuningConf) -> dict[str, Any]:
    return {"sysctl": conf.sysctls, "mac": conf.mac, "mtu": conf.mtu, "promisc": conf.promisc,
            "allmulti": conf.allmulti, "txQLen": conf.txqlen}


def add(call: Call) -> Result:
    conf = parse(call)
    cmd = call.cmd
    prev = call.conf.prev_result
    if prev is None:
        raise InvalidConfig("tuning must be called as a chained plugin: it needs a prevResult "
                            "from the plugin that made the interface")
    with netns.entered(cmd.netns), netlink() as ipr:
        link = links.by_name(ipr, cmd.ifname)
        if link is None:
            raise CNIError(f"tuning: interface {cmd.ifname} not found in {cmd.netns}")
        original = _snapshot(link, conf)
        state_file.save(conf.data_dir, cmd.container_id, cmd.ifname, original)
        try:
            _apply(ipr, link, _wanted(conf))
        except CNIError:
            _apply(ipr, link, original)
            state_file.remove(conf.data_dir, cmd.container_id, cmd.ifname)
            raise
    if conf.mac:
        for iface in prev.interfaces:
            if iface.name == cmd.ifname and iface.sandbox == cmd.netns:
                iface.mac = conf.mac
    prev.cni_version = call.conf.cni_version
    return prev


def delete(call: Call) -> None:
    conf = parse(call)
    cmd = call.cmd
    original = state_file.load(conf.data_dir, cmd.container_id, cmd.ifname)
    if original is not None and cmd.netns:
        try:
            with netns.entered(cmd.netns), netlink() as ipr:
                link = links.by_name(ipr, cmd.ifname)
                if link is not None:
                    _apply(ipr, link, original)
        except netns.NetnsGone:
            pass  # nothing left to restore
    state_file.remove(conf.data_dir, cmd.container_id, cmd.ifname)


def check(call: Call) -> None:
    conf = parse(call)
    cmd = call.cmd
    if call.conf.prev_result is None:
        raise InvalidConfig("CHECK needs prevResult: the result of the ADD to check against")
    with netns.entered(cmd.netns), netlink() as ipr:
        link = links.by_name(ipr, cmd.ifname)
        if link is None:
            raise CNIError(f"tuning: interface {cmd.ifname} not found in {cmd.netns}")
        have = _snapshot(link, conf)
    for key, want in conf.sysctls.items():
        if have["sysctl"][key] != want:
            raise CNIError(f"sysctl {key} is {have['sysctl'][key]}, config says {want}")
    wanted = _wanted(conf)
    for key in ("mac", "mtu", "promisc", "allmulti", "txQLen"):
        if key in have and have[key] != wanted[key]:
            raise CNIError(f"{cmd.ifname} {key} is {have[key]}, config says {wanted[key]}")


def status(call: Call) -> None:
    parse(call)


def gc(call: Call) -> None:
    """Drop saved originals of attachments the runtime no longer knows."""
    conf = parse(call)
    items = call.conf.raw.get("cni.dev/valid-attachments") or []
    if not isinstance(items, list):
        raise InvalidConfig("cni.dev/valid-attachments must be a list")
    keep = {state_file.path(conf.data_dir, str(i.get("containerID", "")),
                            str(i.get("ifname", ""))).name
            for i in items if isinstance(i, dict)}
    try:
        names = os.listdir(conf.data_dir)
    except FileNotFoundError:
        return
    for name in names:
        if name.endswith(".json") and name not in keep:
            os.unlink(os.path.join(conf.data_dir, name))
