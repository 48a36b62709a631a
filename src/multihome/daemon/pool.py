"""Bounded concurrency: two worker lanes, admission limits, one request at a time per container.

Lanes: ADD, CHECK, STATUS and VERSION ("setup") run on one set of workers, DEL and GC
("teardown") on another, so a full ADD queue never delays the DEL that frees resources.
Admission is decided up front:

- setup: at most `workers + queue` requests are inside the daemon; the next one is
  refused at once (the shim turns that into CNI code 11; the runtime retries ADD);
- teardown: never refused for load (a runtime that gets code 11 on DEL may give up and
  leak the pod's attachments); past `workers + queue` a DEL waits for a slot, bounded
  by the wait timeout like every other wait;
- nested: a call made *by* a plugin the daemon runs (a Go `ptp` exec'ing its IPAM, which
  resolves to our shim) runs at once in its connection's thread, without the container
  lock or a worker: the outer request holds both and waits for this very call. Their
  number is capped like the setup lane's; past it they are refused (never waited for).

An admitted top-level request waits for its container's lock (in the connection's
thread), then for a worker. Both waits end at one deadline with WaitTimeout, whose
message says what it waited for. The lock and the admission slot are released when the
work itself ends, not when the caller stops waiting: a request that overran its deadline
keeps its container's later requests behind it.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from multihome.net import netns

T = TypeVar("T")

# Longer than any single plugin exec may take (invoke.EXEC_TIMEOUT), shorter than the
# shim's wait for a reply (shim.REPLY_TIMEOUT): the caller always gets our answer.
DEFAULT_WAIT = 180.0


class Busy(Exception):
    """The daemon already holds as many requests as it may."""


class WaitTimeout(Exception):
    """A bounded wait ran out; the message says what the request waited for."""


class _KeyedLocks:
    """One lock per key, dropped when nobody holds or waits for it (no growth with pods).

    Acquire and release are separate calls: the connection thread acquires, and the
    worker's completion releases (possibly after the connection thread gave up).
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    def acquire(self, key: str, timeout: float) -> bool:
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        if lock.acquire(timeout=max(timeout, 0.0)):
            return True
        self._forget(key, users)
        return False

    def release(self, key: str) -> None:
        with self._guard:
            lock, users = self._locks[key]
        lock.release()
        self._forget(key, users)

    def _forget(self, key: str, users: list[int]) -> None:
        with self._guard:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class _Lane:
    """A set of workers with its admission count."""

    def __init__(self, name: str, workers: int, limit: int, refuse: bool) -> None:
        self.name = name
        self.limit = limit
        self.refuse = refuse  # True: Busy when full; False: wait for a slot
        # long-lived workers: each keeps its netlink handle for the node between requests
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix=f"cni-{name}",
                                           initializer=netns.keep_netlink)
        self.admitted = 0


class WorkerPool:
    def __init__(self, workers: int, queue: int, wait_timeout: float = DEFAULT_WAIT) -> None:
        if workers < 1 or queue < 0 or wait_timeout <= 0:
            raise ValueError("workers must be >= 1, queue >= 0 and wait_timeout > 0")
        self.workers = workers
        self.queue = queue
        self.wait_timeout = wait_timeout
        self._setup = _Lane("worker", workers, workers + queue, refuse=True)
        self._teardown = _Lane("teardown", workers, workers + queue, refuse=False)
        self._nested = 0
        self._count_lock = threading.Lock()
        self._changed = threading.Condition(self._count_lock)
        self._locks = _KeyedLocks()

    @property
    def admitted(self) -> int:
        """Requests inside the daemon (queued or running), all lanes."""
        return self._setup.admitted + self._teardown.admitted + self._nested

    @property
    def limit(self) -> int:
        return self.workers + self.queue

    def _enter(self, lane: _Lane, deadline: float) -> None:
        with self._changed:
            if lane.refuse:
                if lane.admitted >= lane.limit:
                    raise Busy(f"{lane.admitted} requests in progress "
                               f"({self.workers} workers, queue of {self.queue})")
            elif not self._changed.wait_for(lambda: lane.admitted < lane.limit,
                                            deadline - time.monotonic()):
                raise WaitTimeout(f"waited {self.wait_timeout:g} s for one of "
                                  f"{lane.limit} {lane.name} slots to free up")
            lane.admitted += 1

    def _leave(self, lane: _Lane) -> None:
        with self._changed:
            lane.admitted -= 1
            self._changed.notify_all()

    def run(self, key: str, fn: Callable[[], T], *, teardown: bool = False) -> T:
        """Run `fn` on a worker, after any earlier request for `key`.

        Raises Busy (setup lane full) or WaitTimeout (a wait ran out).
        """
        lane = self._teardown if teardown else self._setup
        deadline = time.monotonic() + self.wait_timeout
        self._enter(lane, deadline)
        locked = False
        try:
            if key:
                locked = self._locks.acquire(key, deadline - time.monotonic())
                if not locked:
                    raise WaitTimeout(
                        f"waited {self.wait_timeout:g} s for an earlier request of container "
                        f"{key} to finish")
            ctx = contextvars.copy_context()  # log tags follow the request into the worker
            future: Future[T] = lane.executor.submit(ctx.run, fn)
        except BaseException:
            if locked:
                self._locks.release(key)
            self._leave(lane)
            raise

        def done(_: Future[T]) -> None:
            if locked:
                self._locks.release(key)
            self._leave(lane)

        future.add_done_callback(done)
        try:
            return future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout:
            if future.cancel():
                raise WaitTimeout(f"waited {self.wait_timeout:g} s for a free {lane.name} "
                                  f"({self.workers} busy)") from None
            raise WaitTimeout(f"the request is still running after {self.wait_timeout:g} s; "
                              "it goes on in the daemon") from None
        except CancelledError:
            raise WaitTimeout("the daemon is shutting down") from None

    def run_nested(self, fn: Callable[[], T]) -> T:
        """Run a call made by a plugin the daemon runs: now, in this thread; may raise Busy."""
        with self._changed:
            if self._nested >= self.limit:
                raise Busy(f"{self._nested} nested plugin calls in progress (limit "
                           f"{self.limit})")
            self._nested += 1
        try:
            return contextvars.copy_context().run(fn)
        finally:
            with self._changed:
                self._nested -= 1
                self._changed.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no request is admitted; True when idle."""
        with self._changed:
            return self._changed.wait_for(lambda: self.admitted == 0, timeout)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the workers; queued work is dropped (its callers get WaitTimeout)."""
        for lane in (self._setup, self._teardown):
            lane.executor.shutdown(wait=wait, cancel_futures=True)

    def lock_count(self) -> int:
        return len(self._locks)
