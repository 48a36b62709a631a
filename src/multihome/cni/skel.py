"""The plugin entry: turns the CNI environment and stdin into a call of a plugin function.

A plugin is a module (or any object) with `add`, `delete`, `check`, `status`, `gc`
functions taking a :class:`Call`, plus `SUPPORTED_VERSIONS`. `dispatch` is the one
place where exceptions become CNI error JSON; the executable entry, the daemon and
the engine all go through it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from multihome.cni import version as ver
from multihome.cni.errors import CNIError, DecodingFailure, InternalError
from multihome.cni.result import Result
from multihome.cni.types import CmdArgs, NetConf


@dataclass
class Call:
    cmd: CmdArgs
    conf: NetConf


class Plugin(Protocol):
    SUPPORTED_VERSIONS: tuple[str, ...]

    def add(self, call: Call) -> Result: ...
    def delete(self, call: Call) -> None: ...
    def check(self, call: Call) -> None: ...
    def status(self, call: Call) -> None: ...
    def gc(self, call: Call) -> None: ...


def _version_of(stdin: bytes) -> str:
    """Best-effort cniVersion for error output, even from a config we could not parse."""
    try:
        v = json.loads(stdin).get("cniVersion")
    except (ValueError, AttributeError, RecursionError):
        return ver.LATEST
    return v if isinstance(v, str) and v in ver.ALL_VERSIONS else ver.LATEST


def _version_info(plugin: Plugin) -> dict[str, Any]:
    return {"cniVersion": ver.LATEST, "supportedVersions": list(plugin.SUPPORTED_VERSIONS)}


def handle(plugin: Plugin, cmd: CmdArgs, stdin: bytes) -> dict[str, Any] | None:
    """Run one command; return the JSON to print (None for an empty success).

    Raises CNIError; anything else is a bug and is wrapped by `dispatch`.
    """
    if cmd.command == "VERSION":
        return _version_info(plugin)
    conf = NetConf.from_bytes(stdin, need_name=cmd.command not in ("STATUS",))
    ver.require_supported(conf.cni_version, plugin.SUPPORTED_VERSIONS)
    if cmd.command in ("STATUS", "GC") and not ver.at_least(conf.cni_version, "1.1.0"):
        from multihome.cni.errors import IncompatibleVersion

        raise IncompatibleVersion(
            f"{cmd.command} needs cniVersion 1.1.0 or later, config has {conf.cni_version}"
        )
    call = Call(cmd, conf)
    if cmd.command == "ADD":
        return plugin.add(call).to_dict(conf.cni_version)
    if cmd.command == "DEL":
        plugin.delete(call)
    elif cmd.command == "CHECK":
        if not ver.at_least(conf.cni_version, "0.4.0"):
            from multihome.cni.errors import IncompatibleVersion

            raise IncompatibleVersion(
                f"CHECK needs cniVersion 0.4.0 or later, config has {conf.cni_version}"
            )
        plugin.check(call)
    elif cmd.command == "STATUS":
        plugin.status(call)
    elif cmd.command == "GC":
        plugin.gc(call)
    return None


def dispatch(plugin: Plugin, env: Mapping[str, str], stdin: bytes) -> tuple[int, str]:
    """(exit code, stdout text) for one call; never raises."""
    try:
        cmd = CmdArgs.from_env(env)
        out = handle(plugin, cmd, stdin)
        return 0, json.dumps(out) if out is not None else ""
    except CNIError as e:
        return 1, json.dumps(e.to_dict(_version_of(stdin)))
    except Exception as e:  # the contract forbids tracebacks on stdout
        err = InternalError(f"internal error: {type(e).__name__}: {e}")
        return 1, json.dumps(err.to_dict(_version_of(stdin)))


def run(plugin: Plugin) -> None:
    """Entry point of a plugin executable."""
    try:
        stdin = b"" if os.environ.get("CNI_COMMAND") == "VERSION" else sys.stdin.buffer.read()
    except OSError as e:
        stdin = b""
        code, out = 1, json.dumps(DecodingFailure("cannot read stdin", str(e)).to_dict(ver.LATEST))
    else:
        code, out = dispatch(plugin, os.environ, stdin)
    if out:
        sys.stdout.write(out)
        sys.stdout.flush()
    sys.exit(code)
