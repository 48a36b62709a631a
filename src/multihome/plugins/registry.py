"""Built-in plugin types and the one function that runs any plugin type.

Built-in types run in-process (no fork/exec); any other `type` is exec'ed from the
CNI path exactly as libcni does. Modules are imported lazily so that a plugin
executable only pays for the plugin it is.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from typing import Any, cast

from multihome.cni.result import Result
from multihome.cni.skel import Plugin
from multihome.cni.types import CmdArgs

# type name -> module implementing the Plugin protocol
BUILTIN: dict[str, str] = {
    "bridge": "multihome.plugins.bridge",
    "cnv-bridge": "multihome.plugins.bridge",
    "host-local": "multihome.ipam.host_local",
    "static": "multihome.ipam.static",
    "multihome": "multihome.engine_plugin",
    "macvlan": "multihome.plugins.macvlan",
    "ipvlan": "multihome.plugins.ipvlan",
    "vlan": "multihome.plugins.vlan",
    "tap": "multihome.plugins.tap",
    "macvtap": "multihome.plugins.macvtap",
    "tuning": "multihome.plugins.tuning",
    "cnv-tuning": "multihome.plugins.tuning",
    "host-device": "multihome.plugins.host_device",
    "sriov": "multihome.plugins.sriov",
    # Multus' executable names, so that a node's existing `00-multus.conf` (thick:
    # `multus-shim`, thin: `multus`) reaches the engine unchanged (install-cni --multus-names)
    "multus": "multihome.engine_plugin",
    "multus-shim": "multihome.engine_plugin",
}
MULTUS_NAMES: tuple[str, ...] = ("multus", "multus-shim")
# What install-cni writes unless told: Multus' names would replace Multus on the node.
DEFAULT_TYPES: tuple[str, ...] = tuple(t for t in BUILTIN if t not in MULTUS_NAMES)


def lookup(plugin_type: str) -> Plugin | None:
    module = BUILTIN.get(plugin_type)
    return cast(Plugin, importlib.import_module(module)) if module else None


# Set by the daemon to time every delegate call: (plugin type, command, seconds).
delegate_observer: Callable[[str, str, float], None] | None = None


def delegate(plugin_type: str, cmd: CmdArgs, conf: dict[str, Any]) -> Result | None:
    """Run `cmd.command` of `plugin_type` with `conf` as its stdin.

    Returns the parsed result for ADD, None otherwise; raises CNIError on failure.
    """
    observer = delegate_observer
    if observer is None:
        return _delegate(plugin_type, cmd, conf)
    start = time.perf_counter()
    try:
        return _delegate(plugin_type, cmd, conf)
    finally:
        observer(plugin_type, cmd.command, time.perf_counter() - start)


def _delegate(plugin_type: str, cmd: CmdArgs, conf: dict[str, Any]) -> Result | None:
    plugin = lookup(plugin_type)
    stdin = json.dumps(conf).encode()
    if plugin is not None:
        from multihome.cni.skel import handle

        out = handle(plugin, cmd, stdin)
    else:
        from multihome.cni.invoke import exec_plugin, find_plugin

        out = exec_plugin(find_plugin(plugin_type, cmd.path), cmd, stdin)
    if cmd.command == "ADD":
        return Result.from_dict(out)
    return None
