"""Stores that live as long as the process: one per place they point to.

The daemon opens "the store" for every request; a fresh SQLite connection or a fresh set
of Kubernetes watch caches per request would cost more than the request itself. A shared
store's `close()` is a no-op (its `shared` flag): requests come and go, the store stays.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

_keep_open = False


def keep_open() -> None:
    """From now on this process reuses one store per file (the daemon: one request after
    another opens the same store; a connection and its schema check per request cost
    more than the request's own reads and writes)."""
    global _keep_open
    _keep_open = True


def keeping_open() -> bool:
    return _keep_open


class Shareable(Protocol):
    shared: bool


K = TypeVar("K", bound=Hashable)
S = TypeVar("S", bound=Shareable)


class Registry(Generic[K, S]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stores: dict[K, S] = {}

    def get(self, key: K, make: Callable[[], S],
            still_valid: Callable[[S], bool] | None = None) -> S:
        """The store for `key`, made (and marked shared) the first time or when the known
        one is no longer valid; that one is dropped, not closed: a request may still use it."""
        with self._lock:
            store = self._stores.get(key)
            if store is None or (still_valid is not None and not still_valid(store)):
                store = make()
                store.shared = True
                self._stores[key] = store
            return store

    def forget(self, store: S) -> None:
        with self._lock:
            for key in [k for k, s in self._stores.items() if s is store]:
                del self._stores[key]
