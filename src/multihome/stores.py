"""Choosing a store backend: the embedded SQLite file, or the Kubernetes API.

Above both `multihome.store` (the interface and SQLite) and `multihome.k8s` (the API
store), so that neither needs to know of the other; what opens a store by the name a
user or a config gives (the CLI, the console, the engine plugin) imports this.
"""

from __future__ import annotations

from multihome.extras import missing_extra
from multihome.store import Store, StoreUnavailable, store_path
from multihome.store.sqlite import open_sqlite


def open_store(path: str | None = None) -> Store:
    """``k8s`` (in-cluster) or ``k8s:<kubeconfig>`` selects the Kubernetes API store;
    anything else names a SQLite file (default: ``$MULTIHOME_STORE``, else the default)."""
    where = store_path(path)
    if where == "k8s" or where.startswith("k8s:"):
        # Imported here, not at the top: the API client is the optional `k8s` extra (a
        # CNI node with a SQLite store installs no lightkube), and it costs ~0.3 s to load.
        try:
            from multihome.k8s.store import open_kube_store
        except ModuleNotFoundError as e:
            message = missing_extra(e, f"the store {where}")
            if message is None:
                raise
            raise StoreUnavailable(message) from None
        return open_kube_store(where[4:] or None)
    return open_sqlite(where)
