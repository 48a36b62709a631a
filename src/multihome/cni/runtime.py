"""The runtime side of CNI: network config lists run as libcni runs them.

This is what a container runtime (or our attachment engine) calls: parse a conf or
conflist, then ADD/CHECK/DEL/GC/STATUS it for one attachment. Each plugin of the list
runs through an injected :class:`Executor`, as libcni's `CNIConfig{Exec}` does (by default
every type is an executable found in CNI_PATH; the engine injects the plugin registry's,
which runs built-in types in-process and execs the others), with
`name`, `cniVersion`, `prevResult` and the `runtimeConfig` its capabilities allow
injected into its config. Successful ADDs are cached in libcni's layout.

Differences from libcni, on purpose:
- DEL tries every plugin even when one fails (then raises the first error) and keeps
  the cache entry in that case, so that a retry still has the prevResult.
- CHECK on a config older than 0.4.0 is skipped instead of failing, as the spec says a
  runtime must not call CHECK for such configs.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from multihome.cni import cache, jsontext
from multihome.cni import version as ver
from multihome.cni.errors import (
    CNIError,
    DecodingFailure,
    IncompatibleVersion,
    InvalidConfig,
    InvalidEnvironment,
)
from multihome.cni.invoke import PluginNotFound, exec_plugin, find_plugin
from multihome.cni.result import Result
from multihome.cni.types import CONTAINER_ID_RE, NAME_PATTERN, NAME_RE, CmdArgs, validate_ifname

DEFAULT_CACHE_DIR = cache.DEFAULT_CACHE_DIR

# Capabilities from CONVENTIONS.md, plus the annotations one CRI runtimes send.
KNOWN_CAPABILITIES = (
    "portMappings", "ipRanges", "bandwidth", "dns", "ips", "mac", "infinibandGUID",
    "deviceID", "aliases", "cgroupPath", "io.kubernetes.cri.pod-annotations",
)


@dataclass
class RuntimeConf:
    """One attachment: which container, where, under which interface name."""

    container_id: str
    netns: str
    ifname: str
    args: list[tuple[str, str]] = field(default_factory=list)
    capability_args: dict[str, Any] = field(default_factory=dict)
    cache_dir: str = DEFAULT_CACHE_DIR


@dataclass
class NetworkConfigList:
    """A conflist (a single conf is held as a one-plugin list)."""

    name: str
    cni_version: str
    plugins: list[dict[str, Any]]
    disable_check: bool = False
    disable_gc: bool = False
    raw: bytes = b""


# -- parsing ---------------------------------------------------------------

def _bool_key(obj: dict[str, Any], key: str) -> bool:
    """libcni accepts a JSON bool or the strings "true"/"false"."""
    value = obj.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidConfig(f"invalid {key!r} {value!r} in network config: expected true or false")


def _pick_version(obj: dict[str, Any]) -> str:
    v = obj.get("cniVersion", "")
    if v is None:
        v = ""
    if not isinstance(v, str):
        raise InvalidConfig(f"invalid cniVersion {v!r}: expected a string like \"1.0.0\"")
    if v:
        ver.parse(v)
    versions = obj.get("cniVersions")
    if versions is not None:
        if not isinstance(versions, list):
            raise InvalidConfig("invalid 'cniVersions': expected a list of version strings")
        for i, item in enumerate(versions):
            if not isinstance(item, str):
                raise InvalidConfig(f"invalid 'cniVersions' entry {item!r} at index {i}: "
                                    "expected a version string")
            ver.parse(item)
        candidates = [*versions, v] if v else list(versions)
        chosen = ver.pick(candidates)
        if chosen is None:
            raise IncompatibleVersion(
                f"none of the config's versions {candidates} is supported; "
                f"supported are {list(ver.ALL_VERSIONS)}"
            )
        return chosen
    v = v or "0.1.0"
    ver.require_supported(v)
    return v


def _check_plugin(plugin: Any, index: int) -> dict[str, Any]:
    if not isinstance(plugin, dict):
        raise InvalidConfig(f"plugin {index} of the network config is not a JSON object")
    ptype = plugin.get("type")
    if not isinstance(ptype, str) or not ptype:
        raise InvalidConfig(f"plugin {index} of the network config is missing 'type'")
    caps = plugin.get("capabilities")
    if caps is not None and not (isinstance(caps, dict)
                                 and all(isinstance(x, bool) for x in caps.values())):
        raise InvalidConfig(f"plugin {index} ({ptype}): 'capabilities' must map names to "
                            "true or false")
    return plugin


def parse_network_config(data: bytes | str | dict[str, Any]) -> NetworkConfigList:
    """A conf (`type` at the top) or a conflist (`plugins`), validated."""
    if isinstance(data, dict):
        if jsontext.too_deep(data):
            raise DecodingFailure(f"network config nests deeper than {jsontext.MAX_DEPTH} "
                                  "levels")
        obj: Any = data
        raw = json.dumps(data).encode()
    else:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        obj = jsontext.loads(raw)
    if not isinstance(obj, dict):
        raise InvalidConfig("network config must be a JSON object")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidConfig("network config is missing 'name'")
    if not NAME_RE.match(name):
        raise InvalidConfig(f"invalid network name {name!r}: must match {NAME_PATTERN}")
    cni_version = _pick_version(obj)
    if "plugins" in obj:
        plugins = obj["plugins"]
        if not isinstance(plugins, list):
            raise InvalidConfig(f"network {name!r}: 'plugins' must be a list")
        if not plugins:
            raise InvalidConfig(f"network {name!r} has an empty 'plugins' list")
        checked = [_check_plugin(p, i) for i, p in enumerate(plugins)]
        return NetworkConfigList(name, cni_version, checked, _bool_key(obj, "disableCheck"),
                                 _bool_key(obj, "disableGC"), raw)
    if "type" not in obj:
        raise InvalidConfig(f"network {name!r} has neither 'type' nor 'plugins'")
    return NetworkConfigList(name, cni_version, [_check_plugin(obj, 0)], raw=raw)


def load_from_dir(conf_dir: str, name: str | None = None) -> NetworkConfigList:
    """A network from a CNI conf dir, as libcni and CRI runtimes find it.

    With `name`: the first `.conflist` (sorted by file name) of that name, else the
    first `.conf`/`.json`. Without: the first valid file of any of the three kinds in
    file-name order (the runtime's "default network"). Raises InvalidConfig when none.
    """
    try:
        files = sorted(f for f in os.listdir(conf_dir)
                       if f.endswith((".conf", ".conflist", ".json")))
    except OSError as e:
        raise InvalidConfig(f"cannot read CNI config directory {conf_dir}", str(e)) from e
    if name is not None:
        files = ([f for f in files if f.endswith(".conflist")]
                 + [f for f in files if not f.endswith(".conflist")])
    skipped: list[str] = []
    for fname in files:
        path = os.path.join(conf_dir, fname)
        try:
            with open(path, "rb") as f:
                net = parse_network_config(f.read())
        except (OSError, CNIError) as e:
            skipped.append(f"{fname}: {e}")
            continue
        if fname.endswith(".conflist") and "plugins" not in json.loads(net.raw):
            skipped.append(f"{fname}: a .conflist without 'plugins'")
            continue
        if name is None or net.name == name:
            return net
    what = f"named {name!r}" if name is not None else "at all"
    raise InvalidConfig(f"no valid network config {what} in {conf_dir}", "; ".join(skipped))


def plugin_capabilities(net: NetworkConfigList) -> set[str]:
    """Capabilities that at least one plugin of the list declares true."""
    caps: set[str] = set()
    for plugin in net.plugins:
        for cap, on in (plugin.get("capabilities") or {}).items():
            if on is True:
                caps.add(cap)
    return caps


def build_plugin_conf(plugin: dict[str, Any], net: NetworkConfigList,
                      prev_result: Result | None, rt: RuntimeConf | None) -> dict[str, Any]:
    """The stdin of one plugin of the list (the spec's "execution configuration")."""
    conf = copy.deepcopy(plugin)
    caps = conf.pop("capabilities", None) or {}
    conf["name"] = net.name
    conf["cniVersion"] = net.cni_version
    if prev_result is not None:
        conf["prevResult"] = prev_result.to_dict(net.cni_version)
    else:
        conf.pop("prevResult", None)
    if rt is not None:
        injected = {cap: rt.capability_args[cap] for cap, on in caps.items()
                    if on is True and cap in rt.capability_args}
        if injected:
            existing = conf.get("runtimeConfig")
            base = dict(existing) if isinstance(existing, dict) else {}
            conf["runtimeConfig"] = {**base, **injected}
    return conf


# -- operations --------------------------------------------------------------

def _validate_rt(net: NetworkConfigList, rt: RuntimeConf) -> None:
    if not rt.container_id or not CONTAINER_ID_RE.match(rt.container_id):
        raise InvalidEnvironment(
            f"invalid container ID {rt.container_id!r}: must match {NAME_PATTERN}")
    validate_ifname(rt.ifname)
    if not NAME_RE.match(net.name):
        raise InvalidConfig(f"invalid network name {net.name!r}: must match {NAME_PATTERN}")


def _cmd(command: str, rt: RuntimeConf | None, cni_path: Sequence[str]) -> CmdArgs:
    if rt is None:
        return CmdArgs(command, path=tuple(cni_path))
    args = ";".join(f"{k}={v}" for k, v in rt.args)
    return CmdArgs(command, rt.container_id, rt.netns, rt.ifname, args, tuple(cni_path))


def _describe(plugin: dict[str, Any]) -> str:
    return f"plugin type={plugin.get('type')!r}"


def _wrap(e: CNIError, plugin: dict[str, Any], op: str) -> CNIError:
    wrapped = type(e)(f"{_describe(plugin)} failed ({op}): {e.msg}", e.details, code=e.code)
    return wrapped


class Executor(Protocol):
    """Runs one plugin of a list: `cmd.command` of `plugin_type` with `conf` as its stdin.

    Returns the parsed result for ADD, None otherwise; raises CNIError on failure.
    """

    def run(self, plugin_type: str, cmd: CmdArgs, conf: dict[str, Any]) -> Result | None: ...


class ExecFromPath:
    """libcni's default executor: every type is an executable in CNI_PATH."""

    def run(self, plugin_type: str, cmd: CmdArgs, conf: dict[str, Any]) -> Result | None:
        out = exec_plugin(find_plugin(plugin_type, cmd.path), cmd, json.dumps(conf).encode())
        return Result.from_dict(out) if cmd.command == "ADD" else None


FROM_PATH = ExecFromPath()


def _delegate(executor: Executor, plugin: dict[str, Any], cmd: CmdArgs,
              conf: dict[str, Any], op: str) -> Result | None:
    try:
        return executor.run(str(plugin["type"]), cmd, conf)
    except CNIError as e:
        raise _wrap(e, plugin, op) from e


def add_network_list(net: NetworkConfigList, rt: RuntimeConf,
                     cni_path: Sequence[str], executor: Executor = FROM_PATH) -> Result:
    """ADD each plugin in order, chaining prevResult; cache and return the last result."""
    _validate_rt(net, rt)
    result: Result | None = None
    for plugin in net.plugins:
        conf = build_plugin_conf(plugin, net, result, rt)
        out = _delegate(executor, plugin, _cmd("ADD", rt, cni_path), conf, "add")
        if out is None:
            raise DecodingFailure(f"{_describe(plugin)} returned no result on ADD")
        result = out.convert(net.cni_version)
    assert result is not None  # a list always has a plugin
    cache.save(rt.cache_dir, cache.CacheEntry(
        network_name=net.name, container_id=rt.container_id, ifname=rt.ifname,
        config=net.raw, result=result.to_dict(net.cni_version), netns=rt.netns,
        cni_args=list(rt.args), capability_args=dict(rt.capability_args),
    ))
    return result


def cached_result(net: NetworkConfigList, rt: RuntimeConf) -> Result | None:
    """The cached result of the last ADD, converted to the list's version, or None."""
    entry = cache.load(rt.cache_dir, net.name, rt.container_id, rt.ifname)
    if entry is None or entry.result is None:
        return None
    try:
        return Result.from_dict(entry.result).convert(net.cni_version)
    except CNIError as e:
        raise type(e)(f"cached result of network {net.name!r} for container "
                      f"{rt.container_id} {rt.ifname} cannot be used: {e.msg}",
                      e.details, code=e.code) from e


def check_network_list(net: NetworkConfigList, rt: RuntimeConf,
                       cni_path: Sequence[str], executor: Executor = FROM_PATH) -> None:
    """CHECK each plugin with the cached result as prevResult."""
    if net.disable_check or not ver.at_least(net.cni_version, "0.4.0"):
        return
    _validate_rt(net, rt)
    prev = cached_result(net, rt)
    for plugin in net.plugins:
        conf = build_plugin_conf(plugin, net, prev, rt)
        _delegate(executor, plugin, _cmd("CHECK", rt, cni_path), conf, "check")


def del_network_list(net: NetworkConfigList, rt: RuntimeConf,
                     cni_path: Sequence[str], executor: Executor = FROM_PATH) -> None:
    """DEL each plugin in reverse, best effort; the cache entry goes once all succeed.

    A plugin whose executable is not found is skipped when the list has no cached ADD:
    it never ran (an ADD that failed for that very reason), so it has nothing to undo,
    and refusing would make the attachment impossible to delete.
    """
    _validate_rt(net, rt)
    prev: Result | None = None
    try:
        added = cache.load(rt.cache_dir, net.name, rt.container_id, rt.ifname) is not None
    except CNIError:
        added = True  # a file is there, unreadable: assume the ADD happened
    if ver.at_least(net.cni_version, "0.4.0"):
        try:
            prev = cached_result(net, rt)
        except CNIError:
            # a corrupt entry must not block teardown: drop it and go on without
            cache.delete(rt.cache_dir, net.name, rt.container_id, rt.ifname)
    errors: list[CNIError] = []
    for plugin in reversed(net.plugins):
        conf = build_plugin_conf(plugin, net, prev, rt)
        try:
            _delegate(executor, plugin, _cmd("DEL", rt, cni_path), conf, "delete")
        except CNIError as e:
            if not (isinstance(e, PluginNotFound) and not added):
                errors.append(e)
    if errors:
        raise errors[0]
    cache.delete(rt.cache_dir, net.name, rt.container_id, rt.ifname)


def gc_network_list(net: NetworkConfigList, valid_attachments: list[dict[str, Any]],
                    cni_path: Sequence[str], cache_dir: str = DEFAULT_CACHE_DIR,
                    executor: Executor = FROM_PATH) -> None:
    """GC as libcni 1.1+: DEL stale cached attachments of this network, then GC each plugin.

    `valid_attachments` are `{"containerID": ..., "ifname": ...}`. `disableGC` turns the
    whole operation off, as libcni does. Errors are collected; the first is raised.
    """
    if net.disable_gc:
        return
    valid = {(a.get("containerID"), a.get("ifname")) for a in valid_attachments
             if isinstance(a, dict)}
    errors: list[CNIError] = []
    for entry in cache.list_entries(cache_dir):
        if entry.network_name != net.name or (entry.container_id, entry.ifname) in valid:
            continue
        rt = RuntimeConf(entry.container_id, entry.netns, entry.ifname,
                         list(entry.cni_args), dict(entry.capability_args), cache_dir)
        try:
            del_network_list(net, rt, cni_path)
        except CNIError as e:
            errors.append(type(e)(f"failed to delete stale attachment {entry.container_id} "
                                  f"{entry.ifname}: {e.msg}", e.details, code=e.code))
    if ver.at_least(net.cni_version, "1.1.0"):
        attachments = [{"containerID": a.get("containerID"), "ifname": a.get("ifname")}
                       for a in valid_attachments if isinstance(a, dict)]
        for plugin in net.plugins:
            conf = build_plugin_conf(plugin, net, None, None)
            conf["cni.dev/valid-attachments"] = attachments
            conf["cni.dev/attachments"] = attachments  # the name of early 1.1 drafts
            try:
                _delegate(executor, plugin, _cmd("GC", None, cni_path), conf, "gc")
            except CNIError as e:
                errors.append(e)
    if errors:
        raise errors[0]


def status_network_list(net: NetworkConfigList, cni_path: Sequence[str],
                        executor: Executor = FROM_PATH) -> None:
    """STATUS of each plugin (1.1.0+; older lists are assumed ready). Raises the first error."""
    if not ver.at_least(net.cni_version, "1.1.0"):
        return
    for plugin in net.plugins:
        conf = build_plugin_conf(plugin, net, None, None)
        _delegate(executor, plugin, _cmd("STATUS", None, cni_path), conf, "status")
