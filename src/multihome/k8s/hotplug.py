"""Kubernetes mode: the node daemon hot-plugs its pods when their selection changes.

What the multus-dynamic-networks-controller does beside Multus, done by the daemon itself:
it already watches the pods of its node (the store's pod cache, field selector
spec.nodeName), and it has each pod's netns in the engine's record, so no container
runtime socket is needed. A pod whose `k8s.v1.cni.cncf.io/networks` text differs from
the one last handled for its sandbox gets :func:`multihome.attach.hotplug.hotplug`, run
through the daemon's worker pool under the container's key, so it never interleaves with
that container's ADD or DEL. network-status and events are written by the engine.

A hot-plug that fails (the pod's events say why) is tried again on the next RETRIES
periodic passes (RESYNC_INTERVAL_S apart: a NAD created after the edit is found), then
left until the annotation changes again; a busy daemon or an unreachable API server is
retried sooner, with a bounded backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from multihome.attach import engine
from multihome.attach import hotplug as attach_hotplug
from multihome.attach.multus_config import MultusConfig, parse_multus_config
from multihome.attach.plan import NETWORKS_ANNOTATION, PodRef
from multihome.cni.errors import CNIError, TryAgainLater
from multihome.daemon.pool import Busy, WaitTimeout
from multihome.k8s.backoff import Backoff
from multihome.k8s.store import KubeStore, daemon_node_store
from multihome.store import POD

log = logging.getLogger(__name__)

T = TypeVar("T")
RESYNC_INTERVAL_S = 60.0
RETRY_MAX_S = 30.0
# a failed hot-plug is tried again on this many periodic passes (each one event)
RETRIES = 3


class _Daemon(Protocol):
    """What the watcher needs of the daemon (daemon.server.Daemon)."""

    def engine_config(self) -> dict[str, Any] | None: ...

    @property
    def pool(self) -> Any: ...


class HotplugController:
    def __init__(self, store: KubeStore, engine_config: Callable[[], dict[str, Any] | None],
                 run: Callable[[str, Callable[[], Any]], Any], *,
                 resync_s: float = RESYNC_INTERVAL_S) -> None:
        self.store, self.engine_config, self.run = store, engine_config, run
        self.resync_s = resync_s
        # (namespace, name) -> (its sandbox, the annotation text last handled for it)
        self.handled: dict[tuple[str, str], tuple[str, str | None]] = {}
        # (namespace, name) -> (the text whose hot-plug failed, how many times)
        self.failures: dict[tuple[str, str], tuple[str | None, int]] = {}
        self.passes = 0  # for tests
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.backoff = Backoff(maximum=RETRY_MAX_S)
        self._thread = threading.Thread(target=self._run, name="hotplug", daemon=True)
        cache = store.caches.get(POD)
        if cache is not None:
            previous = cache.on_change

            def changed() -> None:
                if previous is not None:
                    previous()
                self._wake.set()

            cache.on_change = changed

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self.resync_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                retry = self.sync(resync=not woken)
            except Exception as e:  # the watcher must outlive any one bad pass
                log.exception("hot-plug pass failed: %s", e)
                retry = True
            if retry:
                self._stop.wait(self.backoff.next())
                self._wake.set()
            else:
                self.backoff.reset()

    def _conf(self) -> MultusConfig | None:
        raw = self.engine_config()
        if raw is None:
            return None
        try:
            return parse_multus_config(raw)
        except CNIError as e:
            log.warning("hot-plug: the node's engine config cannot be used: %s", e.msg)
            return None

    def sync(self, resync: bool = False) -> bool:
        """One pass over the node's pods; True when something should be tried again soon.

        `resync` (the periodic pass): hot-plugs that failed are tried again, at most
        RETRIES times for the same text (a NAD created after the edit, say)."""
        self.passes += 1
        cache = self.store.caches.get(POD)
        if cache is None or not cache.synced:
            return False
        pods: dict[tuple[str, str], str | None] = {}
        for body in cache.items():
            meta = body.get("metadata") or {}
            spec = body.get("spec") or {}
            if meta.get("deletionTimestamp") or spec.get("hostNetwork"):
                continue  # going away (its DEL takes everything), or never attached
            ann = meta.get("annotations") or {}
            pods[(str(meta.get("namespace", "")), str(meta.get("name", "")))] = \
                ann.get(NETWORKS_ANNOTATION)
        retried = {k for k, (text, n) in self.failures.items()
                   if resync and n <= RETRIES and pods.get(k, text) == text}
        if not retried and all(key in self.handled and self.handled[key][1] == text
                               for key, text in pods.items()):
            return False  # nothing edited since the last pass
        conf = self._conf()
        if conf is None:
            return False
        records = {(r.pod.namespace, r.pod.name): r for r in engine.list_records(conf)
                   if r.pod is not None}
        retry = False
        for key, text in pods.items():
            record = records.get(key)
            if record is None:
                continue  # not (yet) attached here: its ADD reads the annotation itself
            if self.handled.get(key) == (record.container_id, text) and key not in retried:
                continue
            result = self._hotplug(conf, PodRef(*key), record.container_id)
            if result == "later":
                retry = True
                continue
            self.handled[key] = (record.container_id, text)
            if result == "failed":
                before = self.failures.get(key)
                tries = before[1] + 1 if before is not None and before[0] == text else 1
                self.failures[key] = (text, tries)
            else:
                self.failures.pop(key, None)
        for gone in set(self.handled) - set(pods):
            del self.handled[gone]
        for gone in set(self.failures) - set(pods):
            del self.failures[gone]
        return retry

    def _hotplug(self, conf: MultusConfig, pod: PodRef, container_id: str) -> str:
        """"done", "failed" (the pod's events say why), or "later" (a busy daemon, an
        unreachable API server: tried again soon)."""
        try:
            outcome = self.run(container_id,
                               lambda: attach_hotplug.hotplug(conf, self.store, container_id))
        except (Busy, WaitTimeout, TryAgainLater) as e:
            log.warning("hot-plug of pod %s postponed: %s", pod, e)
            return "later"
        except CNIError as e:
            log.error("hot-plug of pod %s failed: %s", pod, e.msg)
            return "failed"
        if outcome.changed:
            log.info("hot-plug of pod %s: added %s, removed %s", pod,
                     [a.ifname for a in outcome.added] or "-",
                     [a.ifname for a in outcome.removed] or "-")
        return "done"


def start_for_daemon(store_spec: str) -> Callable[[_Daemon], HotplugController | None]:
    """The daemon's on_start hook in Kubernetes mode (``k8s[:cfg]``)."""

    def on_start(daemon: _Daemon) -> HotplugController | None:
        store = daemon_node_store(store_spec, "pods are not hot-plugged on this node")
        if store is None:
            return None
        controller = HotplugController(
            store, daemon.engine_config,
            lambda key, fn: daemon.pool.run(key, fn))
        controller.start()
        controller._wake.set()  # a first pass: edits made while the daemon was down
        return controller

    return on_start
