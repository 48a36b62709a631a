"""The engine's log, configured by Multus' `logLevel`, `logFile` and `logToStderr`.

Lines look like Multus' (`<RFC 3339 time> [<level>] <message>`) so that tooling that
greps a Multus log keeps working. Levels map to Multus' names: debug, verbose, error,
panic; without `logLevel` only errors are written, as Multus does. The logger is
`multihome.attach`; inside the daemon it also reaches the daemon's structured log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import TextIO

from multihome.attach.multus_config import MultusConfig

LOGGER = "multihome.attach"
# Multus level name -> stdlib level
LEVELS: dict[str, int] = {"debug": logging.DEBUG, "verbose": logging.INFO,
                          "error": logging.ERROR, "panic": logging.CRITICAL}
_NAMES: dict[int, str] = {v: k for k, v in LEVELS.items()}
DEFAULT_LEVEL = "error"

log = logging.getLogger(LOGGER)
# Without it, Python's last-resort handler would print errors to stderr even when the
# config asks for no stderr logging.
log.addHandler(logging.NullHandler())


class MultusFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        level = _NAMES.get(record.levelno, record.levelname.lower())
        return f"{ts} [{level}] {record.getMessage()}"


def _create_private(path: str) -> None:
    """The log names pods, containers and addresses: create it 0600 (root's only)."""
    with contextlib.suppress(OSError):  # FileHandler reports it on the first write
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))


class _EngineHandler(logging.Handler):
    """Marks the handlers this module owns, so reconfiguring replaces only them."""

    def __init__(self, stream: TextIO | None, path: str) -> None:
        super().__init__()
        self.path = path
        if path:
            _create_private(path)
        self.inner: logging.Handler = (logging.FileHandler(path, encoding="utf-8", delay=True)
                                       if path else logging.StreamHandler(stream))
        self.inner.setFormatter(MultusFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.inner.emit(record)

    def close(self) -> None:
        self.inner.close()
        super().close()


def configure(conf: MultusConfig) -> None:
    """Point the engine's log where the config says; cheap when nothing changed."""
    level = LEVELS[conf.log_level or DEFAULT_LEVEL]
    wanted = ([("", "stderr")] if conf.log_to_stderr else []) + (
        [(conf.log_file, "file")] if conf.log_file else [])
    mine = [h for h in log.handlers if isinstance(h, _EngineHandler)]
    if sorted((h.path, h.get_name()) for h in mine) == sorted(wanted) and log.level == level:
        return
    for h in mine:
        log.removeHandler(h)
        h.close()
    for path, kind in wanted:
        handler = _EngineHandler(sys.stderr if kind == "stderr" else None, path)
        handler.set_name(kind)
        log.addHandler(handler)
    log.setLevel(level)
