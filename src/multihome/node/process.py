"""Knowing a process again: a pid and its start time (pids are reused).

The rollback timer is a detached process whose pid a checkpoint file records; by the time
`node commit` signals it, that process may have ended and the pid gone to some other
process. The start time (field 22 of /proc/PID/stat, clock ticks since boot) tells them
apart; the signal goes through a pidfd opened before the check, so the process checked
is the process signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal


def _stat(pid: int) -> tuple[bytes, int] | None:
    """(state, start time) of process `pid` from one read of /proc/<pid>/stat."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    fields = data[data.rfind(b")") + 2:].split()
    try:
        return fields[0], int(fields[19])  # fields 3 and 22 overall
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """The start time of process `pid`, None when there is no such process."""
    stat = _stat(pid)
    return stat[1] if stat else None


def alive(pid: int, started: int) -> bool:
    """Process `pid` still runs and is the one that started at `started` (not a zombie)."""
    stat = _stat(pid)
    return bool(started) and stat is not None and stat[1] == started and \
        stat[0] not in (b"Z", b"X")


def signal_if_same(pid: int, started: int, sig: int = signal.SIGTERM) -> bool:
    """Send `sig` to `pid` only if it is still the process that started at `started`."""
    if pid <= 0 or not started:
        return False
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if start_time(pid) != started:
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
