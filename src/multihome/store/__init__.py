"""Where NADs, pods and nodes live: one interface, the embedded SQLite store by default."""

from __future__ import annotations

import os

from multihome.extras import missing_extra

# the node-network kinds (NNCP, NNS, NNCE) register themselves on import
from multihome.node import kinds as _node_kinds  # noqa: F401
from multihome.store.base import (
    LAST_APPLIED,
    AlreadyExists,
    Conflict,
    InvalidObject,
    InvalidObjectName,
    NotFound,
    Object,
    Outcome,
    Store,
    StoreError,
    StoreUnavailable,
    check_ref,
)
from multihome.store.objects import (
    NAD,
    NAMESPACE,
    NODE,
    POD,
    KindInfo,
    UnknownKind,
    kind_info,
    register_kind,
    resolve_kind,
)

DEFAULT_STORE_PATH = "/var/lib/multihome/store.db"
STORE_ENV = "MULTIHOME_STORE"


def store_path(path: str | None = None) -> str:
    """The store file: the argument, else ``$MULTIHOME_STORE``, else the default."""
    return path or os.environ.get(STORE_ENV) or DEFAULT_STORE_PATH


_keep_open = False


def keep_open() -> None:
    """From now on this process reuses one store per file (the daemon: one request after
    another opens the same store; a connection and its schema check per request cost
    more than the request's own reads and writes)."""
    global _keep_open
    _keep_open = True


def open_store(path: str | None = None) -> Store:
    """``k8s`` (in-cluster) or ``k8s:<kubeconfig>`` selects the Kubernetes API store."""
    where = store_path(path)
    if where == "k8s" or where.startswith("k8s:"):
        try:
            from multihome.k8s.store import open_kube_store
        except ModuleNotFoundError as e:
            message = missing_extra(e, f"the store {where}")
            if message is None:
                raise
            raise StoreUnavailable(message) from None
        return open_kube_store(where[4:] or None)
    from multihome.store.sqlite import SQLiteStore, shared_store

    return shared_store(where) if _keep_open else SQLiteStore(where)


__all__ = [
    "DEFAULT_STORE_PATH",
    "LAST_APPLIED",
    "NAD",
    "NAMESPACE",
    "NODE",
    "POD",
    "STORE_ENV",
    "AlreadyExists",
    "Conflict",
    "InvalidObject",
    "InvalidObjectName",
    "KindInfo",
    "NotFound",
    "Object",
    "Outcome",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UnknownKind",
    "check_ref",
    "kind_info",
    "open_store",
    "register_kind",
    "resolve_kind",
    "store_path",
]
