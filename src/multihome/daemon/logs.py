"""Structured (logfmt) logs; every line carries the pod, container ID and interface.

The request's identity lives in a context variable that the pool copies into the worker
thread, so log lines written anywhere below (engine, plugins) are tagged too.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

LOGGER = "multihome.daemon"


@dataclass(frozen=True)
class RequestTags:
    pod: str = "-"
    container: str = "-"
    ifname: str = "-"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RequestTags:
        args = dict(p.partition("=")[::2] for p in env.get("CNI_ARGS", "").split(";") if p)
        ns, name = args.get("K8S_POD_NAMESPACE", ""), args.get("K8S_POD_NAME", "")
        return cls(f"{ns}/{name}" if ns and name else "-",
                   env.get("CNI_CONTAINERID") or "-", env.get("CNI_IFNAME") or "-")


NO_REQUEST = RequestTags()
current: contextvars.ContextVar[RequestTags] = contextvars.ContextVar(
    "multihome_request", default=NO_REQUEST)


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\\') or not text.isprintable():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        tags = current.get()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields: list[tuple[str, object]] = [
            ("ts", f"{ts}.{int(record.msecs):03d}Z"), ("level", record.levelname.lower()),
            ("pod", tags.pod), ("container", tags.container), ("ifname", tags.ifname),
            ("msg", record.getMessage())]
        fields += sorted(getattr(record, "fields", {}).items())
        if record.exc_info:
            fields.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{k}={_quote(v)}" for k, v in fields)


def setup(level: str = "info") -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger("multihome")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    return logging.getLogger(LOGGER)


def log(level: int, msg: str, **fields: object) -> None:
    logging.getLogger(LOGGER).log(level, msg, extra={"fields": fields})
