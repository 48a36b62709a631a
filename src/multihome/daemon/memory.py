"""The daemon's malloc settings.

glibc gives each thread that allocates its own arena (up to eight per core) and keeps
what an arena grew to: the daemon's request workers and the threads that run a pod's
delegates side by side would each hold several MiB of RSS that never goes back. Its
threads mostly wait on the kernel, so two arenas serve them without contention.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
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
        self._trim(0)
        self.trims += 1
