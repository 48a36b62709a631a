"""Node resources like bridge-marker: each Linux bridge is `bridge.network.kubevirt.io/<name>`.

A NAD annotated with `k8s.v1.cni.cncf.io/resourceName` of that form needs the bridge on
the node; the lab refuses a pod otherwise, as a scheduler would not place it.
"""

from __future__ import annotations

from collections.abc import Iterable

from multihome.attach.nad import nad_config_from_object, resource_name
from multihome.errors import MultihomeError
from multihome.net import links, netns
from multihome.node.errors import NodeError
from multihome.store import NAD, NotFound, Object, Store

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
            raise MissingNodeResource(_missing(pod, network, wanted, bridge,
                                               _config_bridge(nad)))


def _config_bridge(nad: Object) -> str | None:
    """The bridge the NAD's CNI config attaches to (bridge/cnv-bridge), if it names one."""
    try:
        conf = nad_config_from_object(nad, None)
    except MultihomeError:
        return None
    plugins = conf.get("plugins")
    for plugin in plugins if isinstance(plugins, list) else [conf]:
        if isinstance(plugin, dict) and isinstance(plugin.get("bridge"), str):
            return str(plugin["bridge"])
    return None


def _missing(pod: str, network: str, wanted: str, bridge: str, configured: str | None) -> str:
    if configured and configured != bridge:
        # the seed NAD is such a case: resource bridge-dev, config bridge dev-bridge
        return (f"pod {pod} cannot be scheduled on this node: NAD {network} asks the "
                f"scheduler for {wanted}, a bridge named {bridge}, while its config "
                f"attaches pods to the bridge {configured}; the node has no bridge "
                f"{bridge}. A scheduler places such a pod only on a node that has a bridge "
                f"{bridge} too: make one (e.g. examples/bridge-dev-resource-policy.yml), or "
                f"change the NAD's resourceName to {BRIDGE_RESOURCE_PREFIX}{configured}")
    return (f"pod {pod} cannot be scheduled on this node: NAD {network} requires resource "
            f"{wanted}, and the node has no bridge {bridge} (create it with a "
            "NodeNetworkConfigurationPolicy)")
