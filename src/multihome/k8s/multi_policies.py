"""The daemon's MultiNetworkPolicy handler in Kubernetes mode.

It watches MultiNetworkPolicies, pods and namespaces of the whole cluster (a peer of a pod
on this node can run anywhere; its address comes from its network-status) and, after
every change, reprograms the rules of this node's attachments (the engine's records under
the daemon's CNI dir) with :func:`multihome.attach.policy.enforce.sync_world`. A pod this
node just attached gets its rules when its network-status patch comes back through the
pod watch. Changes are coalesced: a burst of events makes one pass; a failed pass is
retried after a growing wait, and a resync runs every RESYNC_INTERVAL_S regardless.
"""

from __future__ import annotations

import logging
import threading

from multihome.attach import engine
from multihome.attach.policy.enforce import SyncReport, World, sync_world
from multihome.k8s import paths
from multihome.k8s.backoff import Backoff
from multihome.k8s.cache import WatchCache
from multihome.k8s.store import KubeStore, daemon_node_store
from multihome.store import MULTI_POLICY, NAMESPACE, POD, Object

log = logging.getLogger(__name__)

RESYNC_INTERVAL_S = 60.0
SYNC_WAIT_S = 30.0  # a pass waits at most this long for the first lists


def _objects(kind: str, cache: WatchCache) -> list[Object]:
    out = []
    for body in cache.items():
        meta = body.get("metadata") or {}
        out.append(Object(kind, str(meta.get("name", "")), str(meta.get("namespace", "")),
                          body))
    return out


class MultiPolicyController:
    def __init__(self, store: KubeStore, cni_dir: str, *,
                 resync_s: float = RESYNC_INTERVAL_S) -> None:
        self.store, self.cni_dir, self.resync_s = store, cni_dir, resync_s
        self.passes = 0  # completed passes (for tests)
        self.errors = 0
        self.last: SyncReport | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="multi-policies", daemon=True)
        self.watches = {
            kind: WatchCache(store.api, paths.collection(kind, None), on_change=self._wake.set)
            for kind in (MULTI_POLICY, POD, NAMESPACE)
        }

    def world(self) -> World:
        report = SyncReport()
        world = World.of(_objects(MULTI_POLICY, self.watches[MULTI_POLICY]),
                         _objects(NAMESPACE, self.watches[NAMESPACE]),
                         _objects(POD, self.watches[POD]), report)
        for line in report.invalid_policies:
            log.warning("multi-networkpolicy %s", line)
        return world

    def reconcile(self) -> SyncReport:
        """One pass over this node's attachments."""
        if not all(c.wait_synced(SYNC_WAIT_S) for c in self.watches.values()):
            raise TimeoutError("the watches of policies, pods and namespaces are not synced")
        report = sync_world(self.world(), engine.records_in(self.cni_dir),
                            cni_dir=self.cni_dir)
        for line in report.errors:
            log.warning("multi-networkpolicy rules: %s", line)
        self.last = report
        self.passes += 1
        return report

    def start(self) -> None:
        for cache in self.watches.values():
            cache.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for cache in self.watches.values():
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
                log.warning("multi-networkpolicy pass failed: %s (next in %.1fs)", e, delay)
                self.errors += 1
                self._stop.wait(delay)
                continue
            backoff.reset()
            self._wake.wait(self.resync_s)


def start_for_daemon(store_spec: str, cni_dir: str) -> MultiPolicyController | None:
    """The daemon's policy handler when it runs against the Kubernetes API (``k8s[:cfg]``)."""
    store = daemon_node_store(store_spec, "MultiNetworkPolicies are not enforced on this node")
    if store is None:
        return None
    controller = MultiPolicyController(store, cni_dir)
    controller.start()
    return controller
