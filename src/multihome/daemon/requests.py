"""One CNI request inside the daemon: the same skel.dispatch an executable runs, in-process."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multihome.attach import engine as attach_engine
from multihome.cni import skel
from multihome.cni.errors import CNIError, DecodingFailure, InternalError, TryAgainLater
from multihome.cni.version import LATEST
from multihome.daemon import logs, memory
from multihome.daemon.metrics import DaemonMetrics
from multihome.daemon.pool import Busy, WaitTimeout, WorkerPool
from multihome.plugins import registry
from multihome.shim import ENGINE_TYPES, netns_id


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
        """The request in `body`; DecodingFailure for anything else, whatever its shape."""
        try:
            data = json.loads(body)
        except RecursionError:
            raise _malformed("the body is JSON nested too deeply") from None
        except ValueError as e:  # UnicodeDecodeError is one
            raise _malformed(f"the body is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise _malformed(f"the body is a JSON {type(data).__name__}, not an object")
        env = data.get("env")
        if not isinstance(env, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise _malformed("'env' must be an object mapping strings to strings")
        plugin_type = data.get("type", "")
        if not isinstance(plugin_type, str):
            raise _malformed("'type' must be a string")
        netns = data.get("netns", 0)
        if isinstance(netns, bool) or not isinstance(netns, int) or not 0 <= netns < 2**64:
            raise _malformed("'netns' must be an inode number")
        if "stdinBase64" in data:
            encoded = data["stdinBase64"]
            if not isinstance(encoded, str):
                raise _malformed("'stdinBase64' must be a string")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as e:
                raise _malformed(f"'stdinBase64' is not base64: {e}") from None
        else:
            stdin = data.get("stdin", "")
            if not isinstance(stdin, str):
                raise _malformed("'stdin' must be a string")
            raw = stdin.encode("utf-8", "surrogateescape")
        return cls(plugin_type, env, raw, netns)


def _malformed(why: str) -> DecodingFailure:
    return DecodingFailure(f"malformed request to the multihome daemon: {why}")


@dataclass(frozen=True)
class EngineDefaults:
    """What the daemon gives each request of the engine's types (`multihome`, and Multus'
    `multus-shim` / `multus`) from its own configuration."""

    # Keys set on every request's config, as Multus' server lays its daemon config over
    # what the shim sent (so a Multus daemon config's node settings hold for every pod).
    overlay: Mapping[str, Any] = field(default_factory=dict)
    # The daemon's store (`multihome --store ... daemon`), for a config that names none
    # (neither `store` nor Multus' `kubeconfig`): Multus' generated 00-multus.conf never does.
    store: str = ""

    def apply(self, stdin: bytes) -> bytes:
        if not self.overlay and not self.store:
            return stdin
        try:
            conf = json.loads(stdin)
        except (ValueError, RecursionError):
            return stdin  # the engine reports the malformed config itself
        if not isinstance(conf, dict):
            return stdin
        conf.update(self.overlay)
        if self.store and not conf.get("store") and not conf.get("kubeconfig"):
            conf["store"] = self.store
        return json.dumps(conf).encode()


# Label values of /metrics come from these sets only: a request names any type or
# command it likes, and each distinct label value would be a series kept forever.
COMMANDS = frozenset({"ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"})
TEARDOWN = frozenset({"DEL", "GC"})
OTHER = "other"


def command_label(command: str) -> str:
    return command if command in COMMANDS else OTHER


def type_label(plugin_type: str) -> str:
    return plugin_type if plugin_type in registry.BUILTIN else OTHER


def error_reply(err: CNIError) -> tuple[int, str]:
    return 1, json.dumps(err.to_dict(LATEST))


class Runner:
    """Admits, orders and runs requests; records metrics and one log line per request."""

    def __init__(self, pool: WorkerPool, metrics: DaemonMetrics,
                 engine: EngineDefaults | None = None) -> None:
        self.pool = pool
        self.metrics = metrics
        self.engine = engine or EngineDefaults()
        self.own_netns = netns_id()
        self.trim = memory.IdleTrim()
        # every delegate the engine runs in this process is timed for /metrics
        attach_engine.use_executor(registry.Observed(registry.IN_PROCESS,
                                                     self._observe_delegate))

    def _observe_delegate(self, plugin_type: str, command: str, seconds: float) -> None:
        self.metrics.plugin_seconds.observe(seconds, type_label(plugin_type),
                                            command_label(command))

    def in_own_netns(self, req: CNIRequest) -> bool:
        return not req.netns or not self.own_netns or req.netns == self.own_netns

    def serve(self, req: CNIRequest, nested: bool = False) -> tuple[int, str]:
        """(exit code, stdout) for the caller; never raises.

        `nested`: the caller is a process the daemon itself started (see pool.py).
        """
        tags = logs.RequestTags.from_env(req.env)
        logs.current.set(tags)
        command, ptype = req.command or "-", req.plugin_type or "-"
        start = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            if nested:
                code, out = self.pool.run_nested(lambda: self._dispatch(req))
            else:
                code, out = self.pool.run(tags.container if tags.container != "-" else "",
                                          lambda: self._dispatch(req),
                                          teardown=req.command in TEARDOWN)
            result = "ok" if code == 0 else "error"
        except Busy as e:
            code, out = error_reply(TryAgainLater(f"multihome daemon is busy: {e}; "
                                                  "try again later"))
            result = "busy"
        except WaitTimeout as e:
            code, out = error_reply(TryAgainLater(f"multihome daemon gave up waiting: {e}"))
            result = "timeout"
        except Exception as e:  # the caller gets a CNI error, never a dropped connection
            code, out = error_reply(InternalError(f"multihome daemon failed: "
                                                  f"{type(e).__name__}: {e}"))
            result = "error"
        finally:
            self.metrics.in_flight.dec()
            if not nested and self.pool.admitted == 0:
                self.trim.idle()
        seconds = time.perf_counter() - start
        self.metrics.requests.inc(command_label(command), type_label(ptype), result)
        self.metrics.request_seconds.observe(seconds, command_label(command))
        level = logging.INFO if code == 0 else logging.WARNING
        fields: dict[str, object] = {"command": command, "type": ptype, "code": code,
                                     "ms": round(seconds * 1000, 2)}
        if nested:
            fields["nested"] = True
        if code:
            fields["error"] = _error_msg(out)
        logs.log(level, f"{command} {result}", **fields)
        return code, out

    def _dispatch(self, req: CNIRequest) -> tuple[int, str]:
        plugin = registry.lookup(req.plugin_type)
        if plugin is None:
            return error_reply(InternalError(
                f"the multihome daemon has no built-in plugin type {req.plugin_type[:100]!r}; "
                "reinstall the executables with `multihome install-cni`"))
        stdin = (self.engine.apply(req.stdin) if req.plugin_type in ENGINE_TYPES
                 else req.stdin)
        start = time.perf_counter()
        try:
            return skel.dispatch(plugin, req.env, stdin)
        finally:
            self.metrics.plugin_seconds.observe(time.perf_counter() - start,
                                                type_label(req.plugin_type),
                                                command_label(req.command))


def _error_msg(out: str) -> str:
    try:
        data: Any = json.loads(out)
        return str(data.get("msg", ""))
    except (ValueError, AttributeError):
        return out[:200]
