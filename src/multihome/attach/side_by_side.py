"""Running one pod's delegates side by side.

Most of an attachment's time is the kernel's, not Python's: deleting a veth waits ~20 ms
for RCU grace periods, moving one into a namespace waits too. Threads overlap those waits
(the GIL is released in the system calls). Each delegate works on its own interface of
the pod, exactly as the delegates of two pods on one node already run concurrently, so
this adds no case the plugins do not already handle.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from multihome.cni.errors import CNIError
from multihome.net import netns

T = TypeVar("T")
R = TypeVar("R")

# Shared by every request of the process. A task may itself call run_each (an engine
# delegate is an engine); a waiter then runs any of its items that no thread has started
# yet itself, so a full pool only queues and never deadlocks. Each thread keeps its own
# netlink and nftables contexts (~1 MiB of RSS apiece): with 8 the daemon outgrew its
# 60 MiB, with 4 (and the caller's thread) a pod of 8 networks still costs ~20 ms per
# added network.
POOL_SIZE = 4
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="multihome-delegate",
                                       initializer=netns.keep_netlink)
        return _pool


def run_each(fn: Callable[[T], R], items: Sequence[T]) -> list[R | CNIError]:
    """`fn` over every item at once; in item order, each result or the CNIError it raised.

    Every call finishes before this returns (a rollback must see all of them). Any other
    exception is re-raised after that. The first item runs in the calling thread, and so
    does each item no pool thread has started when it is waited for; log tags (context
    variables) follow the others into theirs.
    """
    futures: list[Future[R]] = [
        _executor().submit(contextvars.copy_context().run, fn, item) for item in items[1:]]
    outcomes: list[R | CNIError] = []
    first_error: BaseException | None = None
    if items:
        try:
            outcomes.append(fn(items[0]))
        except CNIError as e:
            outcomes.append(e)
        except BaseException as e:  # re-raised once the others are done
            first_error = e
    for item, future in zip(items[1:], futures, strict=True):
        if future.cancel():  # not started: waiting for it could wait for ourselves
            try:
                outcomes.append(fn(item))
            except CNIError as e:
                outcomes.append(e)
            except BaseException as e:
                first_error = first_error or e
            continue
        error = future.exception()  # waits for the call to finish
        if isinstance(error, CNIError):
            outcomes.append(error)
        elif error is not None:
            first_error = first_error or error
        else:
            outcomes.append(future.result())
    if first_error is not None:
        raise first_error
    return outcomes
