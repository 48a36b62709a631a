"""One CNI request inside the daemon: the same skel.dispatch an executable runs, in-process."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from multihome.cni import skel
from multihome.cni.errors import CNIError, DecodingFailure, InternalError, TryAgainLater
from multihome.cni.version import LATEST
from multihome.daemon import logs
from multihome.daemon.metrics import DaemonMetrics
from multihome.daemon.pool import Busy, WorkerPool
from multihome.plugins import registry
from multihome.shim import netns_id


@dataclass(frozen=True)
class CNIRequest:
    plugin_type: str
    env: dict[str, str]
    stdin: bytes
    netns: int = 0

    @property
    def command(self) -> str:
        return self.env.get("CNI_COMMAND", "")

    @classmethod
    def from_json(cls, body: bytes) -> CNIRequest:
        try:
            data = json.loads(body)
            env = data["env"]
            if not isinstance(env, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
                raise TypeError("env must map strings to strings")
            stdin = data.get("stdin", "")
            raw = (base64.b64decode(data["stdinBase64"], validate=True)
                   if "stdinBase64" in data
                   else str(stdin).encode("utf-8", "surrogateescape"))
            return cls(str(data.get("type", "")), env, raw, int(data.get("netns", 0)))
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
            raise DecodingFailure("malformed request to the multihome daemon",
                                  f"{type(e).__name__}: {e}") from e


def error_reply(err: CNIError) -> tuple[int, str]:
    return 1, json.dumps(err.to_dict(LATEST))


class Runner:
    """Admits, orders and runs requests; records metrics and one log line per request."""

    def __init__(self, pool: WorkerPool, metrics: DaemonMetrics) -> None:
        self.pool = pool
        self.metrics = metrics
        self.own_netns = netns_id()
        registry.delegate_observer = self._observe_delegate

    def _observe_delegate(self, plugin_type: str, command: str, seconds: float) -> None:
        self.metrics.plugin_seconds.observe(seconds, plugin_type, command)

    def in_own_netns(self, req: CNIRequest) -> bool:
        return not req.netns or not self.own_netns or req.netns == self.own_netns

    def serve(self, req: CNIRequest) -> tuple[int, str]:
        """(exit code, stdout) for the caller; never raises."""
        tags = logs.RequestTags.from_env(req.env)
        logs.current.set(tags)
        command, ptype = req.command or "-", req.plugin_type or "-"
        start = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            code, out = self.pool.run(tags.container if tags.container != "-" else "",
                                      lambda: self._dispatch(req))
            result = "ok" if code == 0 else "error"
        except Busy as e:
            code, out = error_reply(TryAgainLater(f"multihome daemon is busy: {e}; "
                                                  "try again later"))
            result = "busy"
        finally:
            self.metrics.in_flight.dec()
        seconds = time.perf_counter() - start
        self.metrics.requests.inc(command, ptype, result)
        self.metrics.request_seconds.observe(seconds, command)
        level = logging.INFO if code == 0 else logging.WARNING
        fields: dict[str, object] = {"command": command, "type": ptype, "code": code,
                                     "ms": round(seconds * 1000, 2)}
        if code:
            fields["error"] = _error_msg(out)
        logs.log(level, f"{command} {result}", **fields)
        return code, out

    def _dispatch(self, req: CNIRequest) -> tuple[int, str]:
        plugin = registry.lookup(req.plugin_type)
        if plugin is None:
            return error_reply(InternalError(
                f"the multihome daemon has no built-in plugin type {req.plugin_type!r}; "
                "reinstall the executables with `multihome install-cni`"))
        start = time.perf_counter()
        try:
            return skel.dispatch(plugin, req.env, req.stdin)
        finally:
            self.metrics.plugin_seconds.observe(time.perf_counter() - start,
                                                req.plugin_type, req.command)


def _error_msg(out: str) -> str:
    try:
        data: Any = json.loads(out)
        return str(data.get("msg", ""))
    except (ValueError, AttributeError):
        return out[:200]
