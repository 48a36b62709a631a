"""The :class:`multihome.store.base.Store` contract over the Kubernetes API.

Pods of this node and NADs are served from watch caches, so an ADD needs no API round-trip
except the network-status write. A pod missing from a cache that is not yet synced is
fetched directly; "API unreachable" becomes a CNI error (code 11, try again later) after
retries, distinct from "pod not found".
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from multihome.cni.errors import TryAgainLater
from multihome.k8s import paths
from multihome.k8s.cache import WatchCache
from multihome.k8s.client import ApiClient, ApiError, ApiUnreachable, Credentials
from multihome.store.base import (
    AlreadyExists,
    Conflict,
    NotFound,
    Object,
    Outcome,
    check_ref,
)
from multihome.store.events import event_body
from multihome.store.merge import merge_apply, normalize
from multihome.store.objects import NAD, POD
from multihome.store.shared import Registry

log = logging.getLogger(__name__)

NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
UNREACHABLE_RETRIES = 3
RETRY_DELAY_S = 0.5
CONFLICT_RETRIES = 5


_SHARED: Registry[tuple[str, str], KubeStore] = Registry()


class ApiUnreachableError(TryAgainLater):
    """The API server did not answer; the runtime retries the ADD."""


class KubeStore:
    def __init__(self, api: ApiClient, node_name: str = "", *, watch: bool = True,
                 retry_delay_s: float = RETRY_DELAY_S) -> None:
        self.api, self.node_name = api, node_name
        self.retry_delay_s = retry_delay_s
        self.shared = False
        self.caches: dict[str, WatchCache] = {}
        if watch:
            selector = f"spec.nodeName={node_name}" if node_name else ""
            self.caches[POD] = WatchCache(api, _collection(POD, None), selector)
            self.caches[NAD] = WatchCache(api, _collection(NAD, None))
            for cache in self.caches.values():
                cache.start()

    @classmethod
    def from_credentials(cls, creds: Credentials, node_name: str = "") -> KubeStore:
        return cls(ApiClient(creds), node_name)

    # -- plumbing ----------------------------------------------------------------------

    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """One request, retried while the API server is unreachable."""
        for attempt in range(UNREACHABLE_RETRIES):
            try:
                return self.api.request(method, path, **kw)
            except ApiUnreachable as e:
                if attempt == UNREACHABLE_RETRIES - 1:
                    raise ApiUnreachableError(
                        f"cannot reach the Kubernetes API server after {UNREACHABLE_RETRIES} "
                        f"attempts ({e}); check the node's network and the API server",
                    ) from e
                time.sleep(self.retry_delay_s)
        raise AssertionError("unreachable")

    def _cached(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        cache = self.caches.get(kind)
        if cache is None or not cache.synced:
            return None
        return cache.get(namespace, name)

    def _remember(self, obj: Object) -> None:
        cache = self.caches.get(obj.kind)
        if cache is not None:
            cache.put(obj.body)

    # -- reads -------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> Object:
        check_ref(namespace, name, kind)
        body = self._cached(kind, namespace, name)
        if body is None:
            # not in the cache: it may be newer than the cache, or the cache is not synced
            try:
                body = self._call("GET", _item(kind, namespace, name))
            except ApiError as e:
                if e.status == 404:
                    raise NotFound(kind, namespace, name) from None
                raise
        return Object.from_manifest(dict(body, kind=kind), namespace)

    def list(self, kind: str, namespace: str | None = None) -> list[Object]:
        check_ref(namespace, None)
        cache = self.caches.get(kind)
        if cache is not None and cache.synced and kind == NAD:
            items = cache.items()
        else:
            items = self._call("GET", _collection(kind, namespace)).get("items", [])
        objs = [Object.from_manifest(dict(b, kind=kind)) for b in items]
        if namespace is not None:
            objs = [o for o in objs if o.namespace == namespace]
        return sorted(objs, key=lambda o: (o.namespace, o.name))

    # -- writes ------------------------------------------------------------------------

    def _body(self, obj: Object) -> dict[str, Any]:
        from multihome.store.objects import kind_info

        return dict(obj.body, apiVersion=kind_info(obj.kind).api_version, kind=obj.kind)

    def create(self, obj: Object) -> Object:
        check_ref(obj.namespace, obj.name, obj.kind)
        try:
            body = self._call("POST", _collection(obj.kind, obj.namespace),
                              body=self._body(obj))
        except ApiError as e:
            if e.status == 409:
                raise AlreadyExists(obj.kind, obj.namespace, obj.name) from None
            raise
        new = Object.from_manifest(body, obj.namespace)
        if paths.has_status_subresource(obj.kind) and obj.body.get("status"):
            # the server dropped .status from the create: it is set through /status
            new = self._put_parts(Object(obj.kind, obj.name, obj.namespace,
                                         dict(obj.body, metadata=new.metadata)),
                                  new.resource_version)
        self._remember(new)
        return new

    def apply(self, obj: Object) -> tuple[Object, bool]:
        stored, outcome = self.apply_outcome(obj)
        return stored, outcome == "created"

    def apply_outcome(self, obj: Object) -> tuple[Object, Outcome]:
        for _ in range(CONFLICT_RETRIES):
            try:
                current = self.get(obj.kind, obj.namespace, obj.name)
            except NotFound:
                return self.create(obj), "created"
            body = normalize(merge_apply(current.body, obj.body))
            if body == current.body:
                return current, "unchanged"
            try:
                new = Object(obj.kind, obj.name, obj.namespace, body)
                return self.update(new, expected_version=current.resource_version), \
                    "configured"
            except Conflict:
                continue
        raise Conflict(obj.kind, obj.namespace, obj.name, 0, 0)

    def update(self, obj: Object, *, expected_version: int | None = None) -> Object:
        if paths.has_status_subresource(obj.kind):
            return self._update_with_status(obj, expected_version)
        body = self._body(obj)
        meta = dict(body.get("metadata", {}))
        if expected_version is not None:
            meta["resourceVersion"] = str(expected_version)
        else:
            meta.pop("resourceVersion", None)
        body["metadata"] = meta
        try:
            new = self._call("PUT", _item(obj.kind, obj.namespace, obj.name), body=body)
        except ApiError as e:
            if e.status == 404:
                raise NotFound(obj.kind, obj.namespace, obj.name) from None
            if e.status == 409:
                raise Conflict(obj.kind, obj.namespace, obj.name, expected_version or 0,
                               0) from None
            raise
        stored = Object.from_manifest(new, obj.namespace)
        self._remember(stored)
        return stored

    def _update_with_status(self, obj: Object, expected_version: int | None) -> Object:
        if expected_version is not None:
            return self._put_parts(obj, expected_version)
        # last write wins, but a CRD takes no update without a resourceVersion: read it
        for _ in range(CONFLICT_RETRIES):
            current = self._fresh(obj.kind, obj.namespace, obj.name)
            try:
                return self._put_parts(obj, current.resource_version)
            except Conflict:
                continue
        raise Conflict(obj.kind, obj.namespace, obj.name, 0, 0)

    def _put_parts(self, obj: Object, version: int) -> Object:
        """`.status` through `/status`, the rest through the object, guarded by ``version``.

        The first write carries the version check, so a status-only change (rollout's slot
        count) is one atomic compare-and-swap; the object is written only when its other
        parts differ from what the server holds. A body without `status` leaves it alone.
        """
        body = self._body(obj)
        path = _item(obj.kind, obj.namespace, obj.name)
        if "status" in body:
            new = self._put(obj, f"{path}/status", body, version)
            if _main_part(new) == _main_part(body):
                return self._stored(new, obj.namespace)
            version = Object.from_manifest(new, obj.namespace).resource_version
        return self._stored(self._put(obj, path, body, version), obj.namespace)

    def _put(self, obj: Object, path: str, body: dict[str, Any],
             version: int) -> dict[str, Any]:
        body = dict(body, metadata=dict(body.get("metadata", {}),
                                        resourceVersion=str(version)))
        try:
            return self._call("PUT", path, body=body)
        except ApiError as e:
            if e.status == 404:
                raise NotFound(obj.kind, obj.namespace, obj.name) from None
            if e.status == 409:
                raise Conflict(obj.kind, obj.namespace, obj.name, version, 0) from None
            raise

    def _stored(self, body: dict[str, Any], namespace: str) -> Object:
        stored = Object.from_manifest(body, namespace)
        self._remember(stored)
        return stored

    def patch_annotations(self, kind: str, namespace: str, name: str,
                          annotations: dict[str, str | None]) -> Object:
        """A merge patch guarded by the resourceVersion we read; retried on 409."""
        path = _item(kind, namespace, name)
        for attempt in range(CONFLICT_RETRIES):
            current = self.get(kind, namespace, name) if attempt == 0 else \
                self._fresh(kind, namespace, name)
            patch = {"metadata": {"resourceVersion": str(current.resource_version),
                                  "annotations": annotations}}
            try:
                body = self._call("PATCH", path, body=patch,
                                  content_type="application/merge-patch+json")
            except ApiError as e:
                if e.status == 404:
                    raise NotFound(kind, namespace, name) from None
                if e.status == 409:
                    continue
                raise
            stored = Object.from_manifest(dict(body, kind=kind), namespace)
            self._remember(stored)
            return stored
        raise Conflict(kind, namespace, name, 0, 0)

    def _fresh(self, kind: str, namespace: str, name: str) -> Object:
        try:
            body = self._call("GET", _item(kind, namespace, name))
        except ApiError as e:
            if e.status == 404:
                raise NotFound(kind, namespace, name) from None
            raise
        return Object.from_manifest(dict(body, kind=kind), namespace)

    def delete(self, kind: str, namespace: str, name: str) -> Object:
        current = self._fresh(kind, namespace, name)
        try:
            self._call("DELETE", _item(kind, namespace, name))
        except ApiError as e:
            if e.status == 404:
                raise NotFound(kind, namespace, name) from None
            raise
        return current

    # -- events ------------------------------------------------------------------------

    def record_event(self, pod: Object | tuple[str, str], reason: str, message: str,
                     event_type: str = "Normal") -> None:
        """An Event on a pod, as Multus records them; failures to record are not fatal."""
        event = event_body(pod, reason, message, event_type, self.node_name)
        ns = event["metadata"]["namespace"]
        with contextlib.suppress(ApiError, ApiUnreachable):
            self.api.request("POST", f"/api/v1/namespaces/{ns}/events", body=event)

    def close(self) -> None:
        if self.shared:
            return  # the process-wide store outlives each request that opened it
        self.shutdown()

    def shutdown(self) -> None:
        _SHARED.forget(self)
        for cache in self.caches.values():
            cache.stop()
        self.api.close()


def _item(kind: str, namespace: str, name: str) -> str:
    check_ref(namespace, name, kind)
    return paths.item(kind, namespace, name)


def _collection(kind: str, namespace: str | None) -> str:
    check_ref(namespace, None)
    return paths.collection(kind, namespace)


def _main_part(body: dict[str, Any]) -> dict[str, Any]:
    """What a write to the object (not /status) can change."""
    meta = body.get("metadata") or {}
    return {**{k: v for k, v in body.items() if k not in ("metadata", "status", "apiVersion",
                                                          "kind")},
            **{k: meta.get(k) or None for k in ("labels", "annotations", "finalizers",
                                                "ownerReferences")}}


def daemon_node_store(store_spec: str, without_node: str) -> KubeStore | None:
    """The daemon's store for a node controller: None unless the store is the Kubernetes
    API (``k8s[:kubeconfig]``) and NODE_NAME names this node (else `without_node` is
    logged: what the node goes without)."""
    if not (store_spec == "k8s" or store_spec.startswith("k8s:")):
        return None
    store = open_kube_store(store_spec[4:] or None)
    if not store.node_name:
        log.warning("NODE_NAME is not set: %s", without_node)
        return None
    return store


def open_kube_store(kubeconfig: str | None = None, node_name: str | None = None) -> KubeStore:
    """One store per process and cluster: the daemon opens the store for every request,
    and the watch caches must live across requests for an ADD to need no round-trip."""
    import os

    from multihome.k8s.client import credentials_from_kubeconfig

    node = node_name if node_name is not None else os.environ.get("NODE_NAME", "")
    return _SHARED.get((kubeconfig or "", node), lambda: KubeStore.from_credentials(
        credentials_from_kubeconfig(kubeconfig), node))
