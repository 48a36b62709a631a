"""Built-in plugin types, and the executor that runs any plugin type for the engine.

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

from multihome.cni.invoke import exec_plugin, find_plugin
from multihome.cni.result import Result
from multihome.cni.runtime import Executor
from multihome.cni.skel import Plugin, handle
from multihome.cni.types import CmdArgs

# type name -> module implementing the Plugin protocol
BUILTIN: dict[str, str] = {
    "bridge": "multihome.plugins.bridge",
    "cnv-bridge": "multihome.plugins.bridge",
    "host-local": "multihome.ipam.host_local",
    "static": "multihome.ipam.static",
    "dhcp": "multihome.ipam.dhcp",
    # the cluster-wide IPAM, under whereabouts' name so that its NADs work unchanged
    "whereabouts": "multihome.ipam.whereabouts",
    "multihome-ipam": "multihome.ipam.whereabouts",
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
# What install-cni writes unless told: Multus' names would replace Multus on the node,
# `whereabouts` the node's whereabouts (its NADs get ours as `multihome-ipam`, or through
# the engine, which runs built-in types in-process whatever the bin dir holds).
DEFAULT_TYPES: tuple[str, ...] = tuple(t for t in BUILTIN
                                       if t not in (*MULTUS_NAMES, "whereabouts"))


def lookup(plugin_type: str) -> Plugin | None:
    module = BUILTIN.get(plugin_type)
    return cast(Plugin, importlib.import_module(module)) if module else None


class InProcess:
    """The engine's executor (a `cni.runtime.Executor`): built-in types run in this
    process through the skel, any other type is exec'ed from CNI_PATH as libcni does."""

    def run(self, plugin_type: str, cmd: CmdArgs, conf: dict[str, Any]) -> Result | None:
        plugin = lookup(plugin_type)
        stdin = json.dumps(conf).encode()
        if plugin is not None:
            out = handle(plugin, cmd, stdin)
        else:
            out = exec_plugin(find_plugin(plugin_type, cmd.path), cmd, stdin)
        return Result.from_dict(out) if cmd.command == "ADD" else None


IN_PROCESS = InProcess()


class Observed:
    """An executor that reports each call's (plugin type, command, seconds): how the
    daemon times delegates for its metrics, around whatever executor runs them."""

    def __init__(self, inner: Executor, observe: Callable[[str, str, float], None]) -> None:
        self.inner, self.observe = inner, observe

    def run(self, plugin_type: str, cmd: CmdArgs, conf: dict[str, Any]) -> Result | None:
        start = time.perf_counter()
        try:
            return self.inner.run(plugin_type, cmd, conf)
        finally:
            self.observe(plugin_type, cmd.command, time.perf_counter() - start)
