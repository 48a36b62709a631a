"""Where the cluster-wide IPAM keeps its pools: versioned documents with compare-and-swap.

The allocator (multihome.ipam.pools) reads a document, decides, and writes it back only
if nobody wrote it meanwhile; a lost race is a re-read, never a lock. :class:`ObjectPools`
gives that contract over any :class:`multihome.store.base.Store`: the SQLite store checks
the version inside its write transaction, the Kubernetes API store sends it as
`metadata.resourceVersion` and the API server answers 409 to a stale one. The documents
are whereabouts' own objects (IPPool, OverlappingRangeIPReservation, NodeSlicePool) in
whereabouts' layout, in one namespace (whereabouts' default is kube-system).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from multihome.store.base import AlreadyExists, Conflict, NotFound, Object, Store
from multihome.store.objects import kind_info
from multihome.store.sqlite import SQLiteStore

DEFAULT_POOL_NAMESPACE = "kube-system"
# where whereabouts was deployed, when not kube-system: the node's setting, not a NAD's
POOL_NAMESPACE_ENV = "WHEREABOUTS_NAMESPACE"


def pool_namespace() -> str:
    return os.environ.get(POOL_NAMESPACE_ENV) or DEFAULT_POOL_NAMESPACE


@dataclass
class PoolDoc:
    """One stored document: `version` 0 means "not stored yet" (a write creates it)."""

    name: str
    spec: dict[str, Any]
    status: dict[str, Any] | None = None
    version: int = 0
    labels: dict[str, str] = field(default_factory=dict)


class PoolStore(Protocol):
    """Compare-and-swap over named documents of a few kinds."""

    def read(self, kind: str, name: str, namespace: str | None = None) -> PoolDoc | None:
        """`namespace` None: the pools' own (claims live in their pod's)."""
        ...

    def write(self, kind: str, doc: PoolDoc, namespace: str | None = None) -> PoolDoc | None:
        """Create (version 0) or replace (the version read); None when another writer
        got there first (exists already, changed since, or deleted since)."""
        ...

    def remove(self, kind: str, name: str) -> None:
        """Delete if present."""
        ...

    def list(self, kind: str) -> list[PoolDoc]: ...

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Reads and writes inside as one transaction where the store has them (SQLite):
        then no write inside loses a race. Elsewhere (the API) a no-op: the version
        check of each write is the guard."""
        ...


class ObjectPools:
    """:class:`PoolStore` over a Store of Kubernetes-style objects."""

    def __init__(self, store: Store, namespace: str = DEFAULT_POOL_NAMESPACE) -> None:
        self.store, self.namespace = store, namespace

    @staticmethod
    def _doc(obj: Object) -> PoolDoc:
        status = obj.body.get("status")
        return PoolDoc(obj.name, dict(obj.spec),
                       dict(status) if isinstance(status, dict) else None,
                       obj.resource_version, dict(obj.metadata.get("labels") or {}))

    def _object(self, kind: str, doc: PoolDoc, namespace: str) -> Object:
        body: dict[str, Any] = {"apiVersion": kind_info(kind).api_version, "kind": kind,
                                "metadata": {"name": doc.name, "namespace": namespace},
                                "spec": doc.spec}
        if doc.labels:
            body["metadata"]["labels"] = dict(doc.labels)
        if doc.status is not None:
            body["status"] = doc.status
        return Object(kind, doc.name, namespace, body)

    def read(self, kind: str, name: str, namespace: str | None = None) -> PoolDoc | None:
        try:
            return self._doc(self.store.get(kind, namespace or self.namespace, name))
        except NotFound:
            return None

    def write(self, kind: str, doc: PoolDoc, namespace: str | None = None) -> PoolDoc | None:
        obj = self._object(kind, doc, namespace or self.namespace)
        try:
            if doc.version == 0:
                return self._doc(self.store.create(obj))
            return self._doc(self.store.update(obj, expected_version=doc.version))
        except (AlreadyExists, Conflict, NotFound):
            return None

    def remove(self, kind: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.store.delete(kind, self.namespace, name)

    def list(self, kind: str) -> list[PoolDoc]:
        return [self._doc(o) for o in self.store.list(kind, self.namespace)]

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        if isinstance(self.store, SQLiteStore):
            return self.store.transaction()
        return contextlib.nullcontext()
