"""The daemon's malloc settings.

glibc gives each thread that allocates its own arena (up to eight per core) and keeps
what an arena grew to: the daemon's request workers and the threads that run a pod's
delegates side by side would each hold several MiB of RSS that never goes back. Its
threads mostly wait on the kernel, so two arenas serve them without contention.

glibc also gives each thread a cache of freed chunks (tcache: up to 7 chunks of each of
64 sizes) that malloc counts as in use: `malloc_trim` cannot return them nor the pages
they sit on, and they keep their neighbours from coalescing. With the daemon's 16
long-lived threads that grew RSS by ~0.3 MiB a burst of 200 pods, slowing but never
stopping, while the live heap stayed flat (measured with heaptrack and mallinfo2 over
benchmark 6 of bench/bench_daemon.py); with the cache off RSS is ~2.5 MiB lower and
flat. It can only be set before the process starts (GLIBC_TUNABLES), so the daemon
re-executes itself once.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import cast

M_ARENA_MAX = -8  # from glibc's <malloc.h>
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's arenas before any thread starts; False where that is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_ARENA_MAX, arenas) == 1)


TUNABLES_ENV = "GLIBC_TUNABLES"
TCACHE_COUNT = "glibc.malloc.tcache_count"


def tunables_env(env: Mapping[str, str]) -> dict[str, str] | None:
    """`env` with glibc's per-thread malloc cache turned off; None when it needs no change
    (already off, or set by the operator, whose choice stands)."""
    current = env.get(TUNABLES_ENV, "")
    if any(item.partition("=")[0] == TCACHE_COUNT for item in current.split(":")):
        return None
    return {**env, TUNABLES_ENV: ":".join(filter(None, (current, f"{TCACHE_COUNT}=0")))}


def reexec_without_thread_caches() -> None:
    """Run this process again, same pid and arguments, with the malloc cache off.

    Call it first thing, before any thread or open file matters: exec replaces the
    process. It returns when there is nothing to do (not glibc, already set) or the exec
    fails (the daemon then runs with glibc's default, only larger)."""
    if platform.libc_ver()[0] != "glibc":
        return
    env = tunables_env(os.environ)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    with suppress(OSError):  # on success, exec does not return
        os.execve(sys.executable, sys.orig_argv, env)


TRIM_INTERVAL_S = 5.0


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return cast(Callable[[int], int], fn)


class IdleTrim:
    """Give freed heap back to the kernel when the daemon falls idle.

    A burst of pods leaves glibc's arenas holding what the burst's threads freed, and
    glibc returns only the top of each arena by itself: RSS stayed at the burst's
    high-water mark (a few MiB above it per burst, measured). malloc_trim releases every
    free page. It runs in a thread of its own, never more than once per interval: an
    idle moment within the interval of the last trim schedules one for when the
    interval ends (a burst's end is always followed by a trim), and no request waits.
    """

    def __init__(self, interval: float = TRIM_INTERVAL_S) -> None:
        self._trim = _malloc_trim()
        self._interval = interval
        self._last = -interval
        self._pending = False
        self._guard = threading.Lock()
        self.trims = 0

    def idle(self) -> None:
        """The daemon holds no request now."""
        if self._trim is None:
            return
        with self._guard:
            if self._pending:
                return
            self._pending = True
            delay = max(0.0, self._last + self._interval - time.monotonic())
        threading.Thread(target=self._run, args=(delay,), name="malloc-trim",
                         daemon=True).start()

    def _run(self, delay: float) -> None:
        assert self._trim is not None
        time.sleep(delay)
        with self._guard:
            self._pending = False
            self._last = time.monotonic()
        # cycles the burst left (asyncio loops, tracebacks) hold pymalloc arenas until
        # a full collection; collected first, their pages go back with the trim (RSS
        # then stays level from burst to burst, benchmark 6 of bench/bench_daemon.py)
        gc.collect()
        self._trim(0)
        self.trims += 1
