"""A watch-fed cache of one kind (an informer): list, then watch from the list's version.

Bookmarks move the resume point without carrying a change; a watch that ends is resumed
from the last version seen; 410 Gone (the version was compacted away) forces a relist.
Readers must check :attr:`synced` and go to the API server while it is False: a cache that
has not finished its first list does not know whether a pod exists.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from multihome.k8s.backoff import Backoff
from multihome.k8s.client import ApiClient, ApiError, ApiUnreachable

log = logging.getLogger(__name__)

# a watch that fails again and again waits 0.5 s doubling up to this, with jitter
RETRY_MAX_S = 30.0


class WatchCache:
    def __init__(self, api: ApiClient, path: str, field_selector: str = "",
                 watch_timeout_s: float = 300.0,
                 on_change: Callable[[], None] | None = None) -> None:
        self.api, self.path, self.field_selector = api, path, field_selector
        self.on_change = on_change  # called after a list and after each change event
        self.watch_timeout_s = watch_timeout_s
        self._items: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stop = threading.Event()
        self.resource_version = ""
        self.relists = 0  # how many full lists ran (for tests and metrics)
        self._thread: threading.Thread | None = None
        self.backoff = Backoff(maximum=RETRY_MAX_S)

    # -- reading ---------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout_s: float) -> bool:
        return self._synced.wait(timeout_s)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get((namespace, name))

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())

    def put(self, body: dict[str, Any]) -> None:
        """Record a write of ours before its watch event arrives (never go backwards)."""
        key = _key(body)
        with self._lock:
            old = self._items.get(key)
            if old is None or _rv(old) <= _rv(body):
                self._items[key] = body

    # -- running ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"watch {self.path}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _params(self) -> dict[str, str]:
        return {"fieldSelector": self.field_selector} if self.field_selector else {}

    def relist(self) -> None:
        data = self.api.request("GET", self.path, params=self._params())
        fresh = {_key(o): o for o in data.get("items", [])}
        with self._lock:
            self._items = fresh
        self.resource_version = str(data.get("metadata", {}).get("resourceVersion", ""))
        self.relists += 1
        self._synced.set()
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def watch_once(self) -> int:
        """One watch request from the current version; raises ApiError(410) when stale.
        Returns how many events it brought."""
        params = dict(self._params(), resourceVersion=self.resource_version)
        seen = 0
        for event in self.api.watch(self.path, params, self.watch_timeout_s):
            if self._stop.is_set():
                return seen
            seen += 1
            kind, obj = event.get("type"), event.get("object", {})
            if kind == "ERROR":
                raise ApiError(int(obj.get("code", 500)), obj)
            rv = str(obj.get("metadata", {}).get("resourceVersion", ""))
            if kind in ("ADDED", "MODIFIED"):
                with self._lock:
                    self._items[_key(obj)] = obj
            elif kind == "DELETED":
                with self._lock:
                    self._items.pop(_key(obj), None)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._changed()
            if rv:
                self.resource_version = rv  # BOOKMARK only carries this
        return seen

    def _run(self) -> None:
        need_list = not self.synced  # a restarted cache resumes from where it was
        while not self._stop.is_set():
            try:
                if need_list:
                    self.relist()
                    need_list = False
                if self.watch_once():
                    self.backoff.reset()
                    continue
                # a watch that ended with no event at all: a server closing at once must
                # not make this a busy loop
                delay = self.backoff.next()
            except ApiError as e:
                if e.status == 410:
                    log.info("watch %s: resourceVersion %s is gone; relisting", self.path,
                             self.resource_version)
                    need_list = True
                    if self.backoff.failures == 0:
                        self.backoff.next()  # the first relist at once, repeats back off
                        continue
                delay = self.backoff.next()
                log.warning("watch %s: %s (retrying in %.1fs)", self.path, e, delay)
            except (ApiUnreachable, ValueError) as e:
                if self._stop.is_set():
                    return  # close() tore the connection down
                delay = self.backoff.next()
                log.warning("watch %s: %s (retrying in %.1fs)", self.path, e, delay)
            self._stop.wait(delay)


def _key(body: dict[str, Any]) -> tuple[str, str]:
    meta = body.get("metadata", {})
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def _rv(body: dict[str, Any]) -> int:
    try:
        return int(body.get("metadata", {}).get("resourceVersion", 0))
    except (TypeError, ValueError):
        return 0
