"""REST paths of the kinds the store knows."""

from __future__ import annotations

from multihome.store.objects import kind_info


def collection(kind: str, namespace: str | None) -> str:
    info = kind_info(kind)
    root = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
    if info.namespaced and namespace:
        return f"{root}/namespaces/{namespace}/{info.plural}"
    return f"{root}/{info.plural}"


def item(kind: str, namespace: str, name: str) -> str:
    return f"{collection(kind, namespace)}/{name}"
