"""The lab's processes (the cluster's, and the DHCP server and daemon of `lab up --dhcp`):
started detached with a log and a pid file, stopped only after checking the pid still is
the process we started (pids are reused)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from multihome.node import process

STOP_TIMEOUT_S = 20.0


class ProcLayout(Protocol):
    """Where a component's log and pid file are (a ClusterLayout is one)."""

    def log(self, component: str) -> Path: ...

    def pidfile(self, component: str) -> Path: ...


class ClusterError(RuntimeError):
    """A component of the lab cluster failed; the message names it and its log."""


def start(layout: ProcLayout, component: str, argv: list[str],
          env: dict[str, str] | None = None) -> int:
    """Start `argv` detached from this process, logging to the component's log."""
    layout.log(component).parent.mkdir(parents=True, exist_ok=True)
    layout.pidfile(component).parent.mkdir(parents=True, exist_ok=True)
    running = pid_of(layout, component)
    if running is not None:
        return running
    with layout.log(component).open("ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env={**os.environ, **(env or {})})
    layout.pidfile(component).write_text(f"{proc.pid} {process.start_time(proc.pid)}\n")
    return proc.pid


def pid_of(layout: ProcLayout, component: str) -> int | None:
    """The component's pid while that very process runs (pids are reused), else None."""
    try:
        pid_s, started = layout.pidfile(component).read_text().split()
        pid, start = int(pid_s), int(started)
    except (OSError, ValueError):
        return None
    return pid if process.alive(pid, start) else None


def stop(layout: ProcLayout, component: str, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, a bounded wait, then SIGKILL; the whole session (children too)."""
    pid = pid_of(layout, component)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_of(layout, component) is not None and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        if pid_of(layout, component) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    layout.pidfile(component).unlink(missing_ok=True)


def wait_for(layout: ProcLayout, component: str, ready: Callable[[], bool],
             timeout: float, what: str) -> None:
    """Poll `ready` until it holds; fail naming the component and its log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except Exception:
            pass
        if pid_of(layout, component) is None:
            raise ClusterError(f"{component} exited before {what}; see {layout.log(component)}: "
                               f"{last_line(layout.log(component))}")
        if time.monotonic() > deadline:
            raise ClusterError(f"{component} not {what} after {timeout:.0f} s; "
                               f"see {layout.log(component)}")
        time.sleep(0.25)


def last_line(log: Path) -> str:
    """The log's last non-empty line, cut short: the one-line reason in an error."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [x for x in f.read().decode(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""
