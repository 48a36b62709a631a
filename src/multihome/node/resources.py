"""Node resources like bridge-marker: each Linux bridge is `bridge.network.kubevirt.io/<name>`.

A NAD annotated with `k8s.v1.cni.cncf.io/resourceName` of that form needs the bridge on
the node; the lab refuses a pod otherwise, as a scheduler would not place it.
"""

from __future__ import annotations

from collections.abc import Iterable

from multihome.attach.nad import resource_name
from multihome.net import links, netns
from multihome.node.errors import NodeError
from multihome.store import NAD, NotFound, Store

BRIDGE_RESOURCE_PREFIX = "bridge.network.kubevirt.io/"
BRIDGE_CAPACITY = "1k"  # bridge-marker advertises 1000 of each


class MissingNodeResource(NodeError):
    """A pod needs a node resource (a bridge) this node does not have."""


def bridges(netns_path: str | None = None) -> list[str]:
    with netns.iproute_in(netns_path) as ipr:
        return sorted(link.name for link in links.all_links(ipr) if link.kind == "bridge")


def capacity(netns_path: str | None = None) -> dict[str, str]:
    return {BRIDGE_RESOURCE_PREFIX + b: BRIDGE_CAPACITY for b in bridges(netns_path)}


def require_for_networks(store: Store, networks: Iterable[str], pod: str,
                         netns_path: str | None = None) -> None:
    """Refuse when a selected NAD ("ns/name") needs a bridge resource the node lacks."""
    present: set[str] | None = None
    for network in networks:
        namespace, _, name = network.partition("/")
        if not name:
            continue
        try:
            nad = store.get(NAD, namespace, name)
        except NotFound:
            continue
        wanted = resource_name(nad)
        if not wanted or not wanted.startswith(BRIDGE_RESOURCE_PREFIX):
            continue
        if present is None:
            present = set(bridges(netns_path))
        bridge = wanted[len(BRIDGE_RESOURCE_PREFIX):]
        if bridge not in present:
            raise MissingNodeResource(
                f"pod {pod} cannot be scheduled on this node: NAD {network} requires "
                f"resource {wanted}, and the node has no bridge {bridge} (create it with a "
                "NodeNetworkConfigurationPolicy)")
