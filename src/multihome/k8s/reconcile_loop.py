"""One thread that reconciles after every change its watches see, and on a resync.

The Kubernetes mode's controllers (node policies, MultiNetworkPolicies) share this loop:
events are coalesced (a burst of changes makes one pass), a failed pass is retried after
a growing, jittered wait that a change does not shorten (a broken API would otherwise be
hammered on every event), and a resync runs every `resync_s` regardless.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from multihome.k8s.backoff import Backoff
from multihome.k8s.cache import WatchCache

log = logging.getLogger(__name__)


class ReconcileLoop:
    def __init__(self, thread_name: str, resync_s: float) -> None:
        self.resync_s = resync_s
        self.errors = 0  # failed passes (for tests and metrics)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def wake(self) -> None:
        """Ask for a pass (a watch's on_change)."""
        self._wake.set()

    def caches(self) -> Iterable[WatchCache]:
        raise NotImplementedError

    def reconcile(self) -> object:
        raise NotImplementedError

    def pass_failed(self, error: Exception, delay: float) -> None:
        log.warning("%s: pass failed: %s (next in %.1fs)", self._thread.name, error, delay)

    def start(self) -> None:
        for cache in self.caches():
            cache.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for cache in self.caches():
            cache.stop()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        backoff = Backoff(maximum=self.resync_s)
        while not self._stop.is_set():
            self._wake.clear()  # changes from here on wake the next pass
            try:
                self.reconcile()
            except Exception as e:  # this thread must outlive any error
                delay = backoff.next()
                self.pass_failed(e, delay)
                self.errors += 1
                self._stop.wait(delay)
                continue
            backoff.reset()
            self._wake.wait(self.resync_s)
