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
from collections.abc import Iterable

from multihome.attach import engine
from multihome.attach.policy.enforce import SyncReport, World, sync_world
from multihome.k8s import paths
from multihome.k8s.cache import WatchCache
from multihome.k8s.reconcile_loop import ReconcileLoop
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


class MultiPolicyController(ReconcileLoop):
    def __init__(self, store: KubeStore, cni_dir: str, *,
                 resync_s: float = RESYNC_INTERVAL_S) -> None:
        super().__init__("multi-policies", resync_s)
        self.store, self.cni_dir = store, cni_dir
        self.passes = 0  # completed passes (for tests)
        self.last: SyncReport | None = None
        self.watches = {
            kind: WatchCache(store.api, paths.collection(kind, None), on_change=self.wake)
            for kind in (MULTI_POLICY, POD, NAMESPACE)
        }

    def caches(self) -> Iterable[WatchCache]:
        return self.watches.values()

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


def start_for_daemon(store_spec: str, cni_dir: str) -> MultiPolicyController | None:
    """The daemon's policy handler when it runs against the Kubernetes API (``k8s[:cfg]``)."""
    store = daemon_node_store(store_spec, "MultiNetworkPolicies are not enforced on this node")
    if store is None:
        return None
    controller = MultiPolicyController(store, cni_dir)
    controller.start()
    return controller
