"""Bridge resources on the Node, like bridge-marker: `bridge.network.kubevirt.io/<br>: 1k`.

The scheduler then places a pod whose NAD names a bridge resource only on nodes that have
the bridge. Bridges that disappear are removed from capacity (a merge patch with null),
so a node stops attracting pods it cannot serve. Resources other than bridges are never
touched.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from multihome.k8s.client import ApiClient, ApiError, ApiUnreachable
from multihome.node.resources import BRIDGE_RESOURCE_PREFIX, capacity

log = logging.getLogger(__name__)

SYNC_INTERVAL_S = 30.0


def capacity_patch(status: dict[str, Any], wanted: dict[str, str]) -> dict[str, Any] | None:
    """The node-status merge patch making bridge capacity equal ``wanted``; None if equal."""
    patch: dict[str, Any] = {}
    for section in ("capacity", "allocatable"):
        have = {k: v for k, v in (status.get(section) or {}).items()
                if k.startswith(BRIDGE_RESOURCE_PREFIX)}
        if have == wanted:
            continue
        change: dict[str, str | None] = {k: None for k in have if k not in wanted}
        change.update(wanted)
        patch[section] = change
    return {"status": patch} if patch else None


def sync_node(api: ApiClient, node_name: str, netns_path: str | None = None) -> bool:
    """Publish this node's bridges; True when the Node was patched."""
    node = api.request("GET", f"/api/v1/nodes/{node_name}")
    patch = capacity_patch(node.get("status") or {}, capacity(netns_path))
    if patch is None:
        return False
    api.request("PATCH", f"/api/v1/nodes/{node_name}/status", body=patch,
                content_type="application/merge-patch+json")
    return True


class BridgeMarker:
    """Re-publishes bridge capacity every ``interval_s`` (bridges come and go)."""

    def __init__(self, api: ApiClient, node_name: str, interval_s: float = SYNC_INTERVAL_S,
                 netns_path: str | None = None) -> None:
        self.api, self.node_name, self.interval_s = api, node_name, interval_s
        self.netns_path = netns_path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bridge-marker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sync_node(self.api, self.node_name, self.netns_path)
            except (ApiError, ApiUnreachable) as e:
                log.warning("bridge-marker: cannot update node %s: %s", self.node_name, e)
            self._stop.wait(self.interval_s)


def start_for_daemon(store_spec: str) -> BridgeMarker | None:
    """The daemon's bridge-marker when it runs against the Kubernetes API (``k8s[:cfg]``)."""
    from multihome.k8s.store import daemon_node_store

    store = daemon_node_store(store_spec, "bridges are not published as node capacity")
    if store is None:
        return None
    marker = BridgeMarker(store.api, store.node_name)
    marker.start()
    return marker
