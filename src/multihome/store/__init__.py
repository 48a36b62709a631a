"""Where NADs, pods and nodes live: the Store interface, the kinds, the embedded SQLite store.

Choosing a backend (SQLite file or the Kubernetes API) is :mod:`multihome.stores`, which
sits above both.
"""

from __future__ import annotations

import os

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
    MULTI_POLICY,
    NAD,
    NAMESPACE,
    NNCE,
    NNCP,
    NNS,
    NODE,
    POD,
    KindInfo,
    UnknownKind,
    kind_info,
    register_kind,
    resolve_kind,
)
from multihome.store.shared import keep_open

DEFAULT_STORE_PATH = "/var/lib/multihome/store.db"
STORE_ENV = "MULTIHOME_STORE"


def store_path(path: str | None = None) -> str:
    """The store file: the argument, else ``$MULTIHOME_STORE``, else the default."""
    return path or os.environ.get(STORE_ENV) or DEFAULT_STORE_PATH


__all__ = [
    "DEFAULT_STORE_PATH",
    "LAST_APPLIED",
    "MULTI_POLICY",
    "NAD",
    "NAMESPACE",
    "NNCE",
    "NNCP",
    "NNS",
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
    "keep_open",
    "kind_info",
    "register_kind",
    "resolve_kind",
    "store_path",
]
