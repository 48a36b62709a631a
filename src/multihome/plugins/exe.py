"""The in-process run of the plugin executables that `multihome install-cni` writes
(after multihome.shim found no daemon to serve the call).

Kept to the standard library (skel, types, results, the registry's type table) so that
VERSION and every argument or config error answer without loading the plugin module
(and with it pyroute2): the executable carries the plugin's supported versions, written
at install time, and the module is imported only when a command reaches the plugin.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, cast

from multihome.cni import skel
from multihome.cni import version as ver
from multihome.cni.errors import CNIError, InternalError, NotAvailable, TryAgainLater
from multihome.plugins.registry import BUILTIN


class _LazyPlugin:
    """A plugin whose module is imported on first use of anything but its versions."""

    def __init__(self, module: str, supported_versions: Sequence[str]) -> None:
        self.SUPPORTED_VERSIONS = tuple(supported_versions)
        self._module_name = module
        self._module: ModuleType | None = None

    def __getattr__(self, name: str) -> Any:
        if self._module is None:
            self._module = _import(self._module_name)
        return getattr(self._module, name)


class _DaemonDown:
    """A plugin whose ADD, CHECK and STATUS need a daemon that did not answer.

    The call still goes through skel, so a bad environment or config gets its own error
    first; DEL, GC and VERSION run in-process as usual (DEL works from the cache).
    """

    def __init__(self, inner: Any, why: str, details: str) -> None:
        self._inner, self._why, self._details = inner, why, details
        self.SUPPORTED_VERSIONS = inner.SUPPORTED_VERSIONS

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def add(self, call: skel.Call) -> Any:
        raise TryAgainLater(f"{self._why}; the runtime will retry", self._details)

    def check(self, call: skel.Call) -> None:
        raise TryAgainLater(f"{self._why}; the runtime will retry", self._details)

    def status(self, call: skel.Call) -> None:
        raise NotAvailable(self._why, self._details)


def _import(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except Exception as e:
        # becomes the CNI error JSON in skel.dispatch, like any other failure
        raise InternalError(f"cannot load plugin module {module}; reinstall multihome",
                            f"{type(e).__name__}: {e}") from e


def _fail(err: CNIError) -> None:
    sys.stdout.write(json.dumps(err.to_dict(ver.LATEST)))
    sys.stdout.flush()
    sys.exit(1)


def main(plugin_type: str, supported_versions: Sequence[str] | None = None,
         daemon_down: tuple[str, str] | None = None) -> None:
    """Run the built-in plugin `plugin_type` as a CNI executable (exits).

    `daemon_down` (why, details): the plugin needs a daemon that did not answer.
    """
    module = BUILTIN.get(plugin_type)
    if module is None:
        _fail(InternalError(
            f"{os.path.basename(sys.argv[0])}: {plugin_type!r} is not a built-in plugin type "
            "of this multihome version; rerun `multihome install-cni`"))
        return
    run_module(module, supported_versions, daemon_down)


def run_module(module: str, supported_versions: Sequence[str] | None = None,
               daemon_down: tuple[str, str] | None = None) -> None:
    """Run the plugin implemented by `module` (exits)."""
    plugin: Any
    if supported_versions is not None:
        plugin = _LazyPlugin(module, supported_versions)
    else:
        try:
            plugin = _import(module)
        except CNIError as e:
            _fail(e)
            return
    if daemon_down is not None:
        plugin = _DaemonDown(plugin, *daemon_down)
    skel.run(cast(skel.Plugin, plugin))
