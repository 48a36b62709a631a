"""REST paths of the kinds the store knows."""

from __future__ import annotations

from multihome.store.objects import IPAM_CLAIM, NNCE, NNCP, NNS, NODE_SLICE_POOL, kind_info

# Kinds whose CRD (deploy/crds) declares `subresources: status`: the API server ignores
# `.status` on create and on writes to the object; only a write to `<item>/status` sets it.
STATUS_SUBRESOURCE_KINDS = frozenset({NNCP, NNS, NNCE, NODE_SLICE_POOL, IPAM_CLAIM})


def collection(kind: str, namespace: str | None) -> str:
    info = kind_info(kind)
    root = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
    if info.namespaced and namespace:
        return f"{root}/namespaces/{namespace}/{info.plural}"
    return f"{root}/{info.plural}"


def item(kind: str, namespace: str, name: str) -> str:
    return f"{collection(kind, namespace)}/{name}"


def has_status_subresource(kind: str) -> bool:
    return kind in STATUS_SUBRESOURCE_KINDS
