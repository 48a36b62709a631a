"""The plugin entry: turns the CNI environment and stdin into a call of a plugin function.

A plugin is a module (or any object) with `add`, `delete`, `check`, `status`, `gc`
functions taking a :class:`Call`, plus `SUPPORTED_VERSIONS`. `dispatch` is the one
place where exceptions become CNI error JSON; the executable entry, the daemon and
the engine all go through it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from multihome.cni import jsontext
from multihome.cni import version as ver
from multihome.cni.errors import CNIError, DecodingFailure, IncompatibleVersion, InternalError
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
    """Best-effort cniVersion for error output, even from a config we could not parse.

    Never raises: it runs while an error is being reported.
    """
    try:
        conf = jsontext.loads(stdin)
    except Exception:
        return ver.LATEST
    v = conf.get("cniVersion") if isinstance(conf, dict) else None
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
        raise IncompatibleVersion(
            f"{cmd.command} needs cniVersion 1.1.0 or later, config has {conf.cni_version}"
        )
    call = Call(cmd, conf)
    if cmd.command == "ADD":
        return _add(plugin, call)
    if cmd.command == "DEL":
        plugin.delete(call)
    elif cmd.command == "CHECK":
        if not ver.at_least(conf.cni_version, "0.4.0"):
                raise IncompatibleVersion(
                f"CHECK needs cniVersion 0.4.0 or later, config has {conf.cni_version}"
            )
        plugin.check(call)
    elif cmd.command == "STATUS":
        plugin.status(call)
    elif cmd.command == "GC":
        plugin.gc(call)
    return None


def _add(plugin: Plugin, call: Call) -> dict[str, Any]:
    """ADD, rendered in the config's version; a result that cannot be rendered (a 0.2.0
    config whose plugin returned no address) fails the ADD, so what the plugin made is
    undone here by its own DEL, which every plugin can run from the call alone."""
    result = plugin.add(call)
    try:
        return result.to_dict(call.conf.cni_version)
    except Exception:
        with contextlib.suppress(Exception):  # the conversion error is the one to report
            plugin.delete(dataclasses.replace(call, cmd=dataclasses.replace(
                call.cmd, command="DEL")))
        raise


def _error_json(err: CNIError, stdin: bytes) -> str:
    # ASCII-only output: a message quoting invalid UTF-8 (surrogate escapes) still prints.
    return json.dumps(err.to_dict(_version_of(stdin)))


def dispatch(plugin: Plugin, env: Mapping[str, str], stdin: bytes) -> tuple[int, str]:
    """(exit code, stdout text) for one call; never raises."""
    try:
        cmd = CmdArgs.from_env(env)
        out = handle(plugin, cmd, stdin)
        return 0, json.dumps(out) if out is not None else ""
    except CNIError as e:
        return 1, _error_json(e, stdin)
    except Exception as e:  # the contract forbids tracebacks on stdout
        return 1, _error_json(InternalError(f"internal error: {type(e).__name__}: {e}"), stdin)


def _read_stdin() -> bytes:
    """At most one byte more than a config may be, so the size check sees it is too big."""
    return sys.stdin.buffer.read(jsontext.MAX_BYTES + 1)


def run(plugin: Plugin) -> None:
    """Entry point of a plugin executable."""
    try:
        stdin = b"" if os.environ.get("CNI_COMMAND") == "VERSION" else _read_stdin()
    except (OSError, ValueError) as e:
        stdin = b""
        code, out = 1, json.dumps(DecodingFailure("cannot read stdin", str(e)).to_dict(ver.LATEST))
    else:
        code, out = dispatch(plugin, os.environ, stdin)
    if out:
        sys.stdout.write(out)
        sys.stdout.flush()
    sys.exit(code)
