"""The daemon's malloc settings.

glibc gives each thread that allocates its own arena (up to eight per core) and keeps
what an arena grew to: the daemon's request workers and the threads that run a pod's
delegates side by side would each hold several MiB of RSS that never goes back. Its
threads mostly wait on the kernel, so two arenas serve them without contention.
"""

from __future__ import annotations

import ctypes

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
