"""Exec of external CNI plugins, as libcni's `pkg/invoke` does it.

- the executable is looked up by `type` in each CNI_PATH directory in order;
- its environment is ours overlaid with the six CNI variables (always all six, so
  nothing inherited leaks through);
- config on stdin, result on stdout; on a non-zero exit the error JSON it printed on
  stdout (or, failing that, on stderr) becomes the matching CNIError, else an error
  quoting its stderr;
- "text file busy" (the binary is being replaced) is retried, as libcni does.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from multihome.cni import version as ver
from multihome.cni.errors import CNIError, DecodingFailure, InternalError, InvalidConfig
from multihome.cni.types import CmdArgs

_BUSY_RETRIES = 5
_BUSY_WAIT = 1.0
# No plugin call may hang its caller (and, in the daemon, a worker and the container's
# later requests) for ever; libcni leaves this to the runtime's context, we bound it.
EXEC_TIMEOUT = 120.0


class PluginNotFound(InvalidConfig):
    """The plugin's executable is in no CNI_PATH directory: it never ran."""


def find_plugin(plugin_type: str, paths: Sequence[str]) -> str:
    """Full path of the executable for `plugin_type` in `paths` (CNI_PATH order)."""
    if not plugin_type:
        raise InvalidConfig("no plugin type given: the network config needs a 'type'")
    if "/" in plugin_type or plugin_type in (".", ".."):
        raise InvalidConfig(f"invalid plugin type {plugin_type!r}: it must be a file name")
    if not paths:
        raise InvalidConfig(
            f"cannot find plugin {plugin_type!r}: no plugin directories given (CNI_PATH is empty)"
        )
    for directory in paths:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate):
            return candidate
    raise PluginNotFound(
        f"failed to find plugin {plugin_type!r} in path {list(paths)}: install it there or "
        "fix the config's 'type'"
    )


def _error_from_output(data: bytes) -> CNIError | None:
    """The CNIError a plugin printed, if `data` is one."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(obj, dict) and isinstance(obj.get("code"), int) and "msg" in obj:
        return CNIError.from_dict(obj)
    return None


def _plugin_failure(path: str, rc: int, stdout: bytes, stderr: bytes) -> CNIError:
    err = _error_from_output(stdout) if stdout.strip() else None
    if err is None and stderr.strip():
        err = _error_from_output(stderr)
    if err is not None:
        return err
    if stdout.strip():
        return DecodingFailure(
            f"plugin {path} failed (exit {rc}) and its error output is not CNI error JSON",
            stdout.decode(errors="replace")[:2000],
        )
    text = stderr.decode(errors="replace").strip()
    if text:
        return InternalError(f"plugin {path} failed (exit {rc})", text[:2000])
    return InternalError(f"plugin {path} failed (exit {rc}) with no error message")


def _run(path: str, env: dict[str, str], stdin: bytes,
         timeout: float) -> subprocess.CompletedProcess[bytes]:
    for attempt in range(_BUSY_RETRIES + 1):
        try:
            return subprocess.run([path], input=stdin, env=env, capture_output=True,
                                  timeout=timeout, check=False)
        except OSError as e:
            if e.errno == 26 and attempt < _BUSY_RETRIES:  # ETXTBSY: being written
                time.sleep(_BUSY_WAIT)
                continue
            raise InternalError(f"cannot execute plugin {path}", str(e)) from e
        except subprocess.TimeoutExpired as e:
            raise InternalError(f"plugin {path} did not answer within {timeout:g} s; "
                                "it was killed") from e
    raise AssertionError("unreachable")


def exec_plugin(path: str, cmd: CmdArgs, stdin: bytes,
                timeout: float = EXEC_TIMEOUT) -> dict[str, Any] | None:
    """Run one command of the plugin at `path`; its parsed stdout, or None when empty.

    ADD (and VERSION) must print a JSON object; a result without `cniVersion` is taken
    to be in the config's version, as libcni does for old plugins.
    """
    env = {**os.environ, **cmd.to_env()}
    proc = _run(path, env, stdin, timeout)
    if proc.returncode != 0:
        raise _plugin_failure(path, proc.returncode, proc.stdout, proc.stderr)
    out = proc.stdout
    if not out.strip():
        if cmd.command in ("ADD", "VERSION"):
            raise DecodingFailure(
                f"plugin {path} succeeded on {cmd.command} but printed nothing; "
                "a result JSON was expected"
            )
        return None
    try:
        data = json.loads(out)
    except (ValueError, UnicodeDecodeError) as e:
        raise DecodingFailure(
            f"plugin {path} printed output that is not JSON on {cmd.command}", str(e)
        ) from e
    if not isinstance(data, dict):
        raise DecodingFailure(f"plugin {path} printed JSON that is not an object on "
                              f"{cmd.command}")
    if cmd.command == "ADD" and not data.get("cniVersion"):
        data["cniVersion"] = _config_version(stdin)
    return data


def _config_version(stdin: bytes) -> str:
    try:
        v = json.loads(stdin).get("cniVersion")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return "0.1.0"
    return v if isinstance(v, str) and v else "0.1.0"


def version_info(path: str, cni_path: Sequence[str] = ()) -> list[str]:
    """The spec versions a plugin supports (its VERSION answer).

    A plugin that answers without `supportedVersions` predates VERSION's current form
    and supports 0.1.0 only, like libcni assumes.
    """
    cmd = CmdArgs("VERSION", path=tuple(cni_path) or ("dummy",))
    data = exec_plugin(path, cmd, json.dumps({"cniVersion": ver.LATEST}).encode()) or {}
    versions = data.get("supportedVersions")
    if isinstance(versions, list) and all(isinstance(v, str) for v in versions):
        return list(versions)
    if not data.get("cniVersion"):
        return ["0.1.0"]
    raise DecodingFailure(f"plugin {path} printed a VERSION answer without supportedVersions",
                          json.dumps(data)[:2000])
