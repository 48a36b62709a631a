"""Bounded concurrency: a fixed worker pool, a queue limit, one request at a time per container.

Admission is decided up front: at most `workers + queue` requests are inside the daemon;
the next one is refused at once (the shim turns that into CNI code 11) rather than piling
up threads and memory. An admitted request first waits for its container's lock (in the
connection's thread, so that a container with many calls never ties up workers), then
for a worker.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class Busy(Exception):
    """The daemon already holds as many requests as it may."""


class _KeyedLocks:
    """One lock per key, dropped when nobody holds or waits for it (no growth with pods)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def held(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class WorkerPool:
    def __init__(self, workers: int, queue: int) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("workers must be >= 1 and queue >= 0")
        self.workers = workers
        self.queue = queue
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="cni-worker")
        self._admitted = 0
        self._count_lock = threading.Lock()
        self._idle = threading.Condition(self._count_lock)
        self._locks = _KeyedLocks()

    @property
    def admitted(self) -> int:
        return self._admitted

    @property
    def limit(self) -> int:
        return self.workers + self.queue

    @contextmanager
    def _admission(self) -> Iterator[None]:
        with self._count_lock:
            if self._admitted >= self.limit:
                raise Busy(f"{self._admitted} requests in progress "
                           f"({self.workers} workers, queue of {self.queue})")
            self._admitted += 1
        try:
            yield
        finally:
            with self._count_lock:
                self._admitted -= 1
                self._idle.notify_all()

    def run(self, key: str, fn: Callable[[], T]) -> T:
        """Run `fn` on a worker, after any earlier request for `key`; raises Busy."""
        with self._admission():
            ctx = contextvars.copy_context()  # log tags follow the request into the worker
            if not key:
                return self._executor.submit(ctx.run, fn).result()
            with self._locks.held(key):
                return self._executor.submit(ctx.run, fn).result()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no request is admitted; True when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._admitted == 0, timeout)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)

    def lock_count(self) -> int:
        return len(self._locks)
