"""The daemon's periodic pass of the cluster-wide IPAM's reconciler (ipam/reconcile.py).

Every node runs it, a jittered interval apart (the writes are version-guarded, so passes
on several nodes at once are safe, only redundant). Each pass opens the store afresh, so a
store that was unreachable (the case that leaks addresses) is simply tried again later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
from collections.abc import Callable, Iterator

from multihome.ipam.reconcile import Report, reconcile
from multihome.ipam.slices import free_slices_of_gone_nodes
from multihome.store import NODE, POD, NotFound, Store
from multihome.store.pools import ObjectPools, PoolStore, pool_namespace
from multihome.store.sqlite import SQLiteStore

log = logging.getLogger(__name__)

INTERVAL_S = 300.0
JITTER = 0.2  # ± this fraction of the interval


def pod_lookup(store: Store) -> Callable[[str], bool | None]:
    """`ns/name` → the pod exists (True), does not (False), cannot tell (None)."""

    def lookup(podref: str) -> bool | None:
        ns, _, name = podref.partition("/")
        if not ns or not name:
            return None
        try:
            store.get(POD, ns, name)
        except NotFound:
            return False
        except Exception as e:  # any store, any failure: keep the address
            log.warning("IPAM reconciler: cannot read pod %s (%s)", podref, e)
            return None
        return True

    return lookup


@contextlib.contextmanager
def _local(path: str) -> Iterator[list[PoolStore]]:
    if not path or not os.path.exists(path):
        yield []
        return
    sqlite = SQLiteStore(path)
    try:
        yield [ObjectPools(sqlite, pool_namespace())]
    finally:
        sqlite.close()


def run_once(store: Store, local_path: str = "") -> Report:
    """One pass: the slices of nodes that are gone, the pools in `store`, and the node's
    own slice pools in `local_path`."""
    pools = ObjectPools(store, pool_namespace())
    for nsp, slice_range, node in free_slices_of_gone_nodes(
            pools, {n.name for n in store.list(NODE)}):
        log.info("IPAM reconciler: slice %s of %s given back (node %s is gone)",
                 slice_range, nsp, node)
    live = {f"{p.namespace}/{p.name}" for p in store.list(POD)}
    with _local(local_path) as local:
        return reconcile([pools, *local], live, pod_lookup(store))


class IpamReconciler:
    def __init__(self, open_store: Callable[[], Store], local_path: str = "",
                 interval_s: float = INTERVAL_S) -> None:
        self.open_store, self.local_path = open_store, local_path
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ipam-reconciler",
                                        daemon=True)

    def start(self) -> IpamReconciler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def pass_once(self) -> Report | None:
        try:
            store = self.open_store()
        except Exception as e:
            log.warning("IPAM reconciler: store unavailable (%s); next pass later", e)
            return None
        try:
            report = run_once(store, self.local_path)
        except Exception as e:
            log.warning("IPAM reconciler: pass failed (%s); next pass later", e)
            return None
        finally:
            with contextlib.suppress(Exception):
                store.close()
        if report.released or report.reservations:
            log.info("IPAM reconciler: released %d addresses and %d reservations of gone "
                     "pods", len(report.released), len(report.reservations))
        return report

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s * random.uniform(1 - JITTER, 1 + JITTER)):
            self.pass_once()
