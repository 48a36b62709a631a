"""Bridge port VLANs (trunk/access) from a node policy, with tagged traffic through them.

Debian-kernel tier only (needs bridge VLAN filtering, which the host kernel lacks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from multihome.net import bridge_vlan, netns
from multihome.node import current, transaction
from support import kstate
from support.netns import Netns

pytestmark = pytest.mark.netns


def _vlan_filtering(ns: Netns) -> bool:
    with netns.iproute_in(ns.path) as ipr:
        return bridge_vlan.supported(ipr, "mhvlprobe")


def _host_on(node: Netns, peer: str, ns: Netns, address: str, vid: int | None = None) -> None:
    """Move veth end `peer` into `ns` as the host behind a port; `address` on it, or on
    an 802.1Q sub-interface `vid` of it."""
    node.run("ip", "link", "set", peer, "netns", ns.name)
    ns.run("ip", "link", "set", peer, "up")
    dev = peer
    if vid is not None:
        dev = f"{peer}.{vid}"
        ns.run("ip", "link", "add", "link", peer, "name", dev, "type", "vlan", "id", str(vid))
        ns.run("ip", "link", "set", dev, "up")
    ns.run("ip", "addr", "add", address, "dev", dev)


def test_trunk_and_access_ports(netns_factory: Any, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIHOME_NODE_DIR", str(tmp_path / "node"))
    node: Netns = netns_factory("mhv")
    # The tier's kernel has VLAN filtering: its absence is a failure, not a skip.
    assert _vlan_filtering(node), "kernel lacks bridge VLAN filtering"
    for port in ("t0", "a0", "n0"):
        node.run("ip", "link", "add", port, "type", "veth", "peer", "name", f"{port[0]}1")
    state = {"interfaces": [{"name": "br0", "type": "linux-bridge", "bridge": {"port": [
        {"name": "t0", "vlan": {"mode": "trunk", "enable-native": True, "tag": 5,
                                "trunk-tags": [{"id": 7}, {"id-range": {"min": 10, "max": 11}}]}},
        {"name": "a0", "vlan": {"mode": "access", "tag": 10}},
        {"name": "n0", "vlan": {"mode": "access", "tag": 11}}]}}]}
    report = transaction.apply_state(state, netns_path=node.path)
    assert "br0: vlan filtering on" in report.changes
    ports = {p["name"]: p for p in next(i for i in current.show(node.path)["interfaces"]
                                        if i["name"] == "br0")["bridge"]["port"]}
    assert ports["a0"]["vlan"] == {"mode": "access", "tag": 10}
    assert ports["n0"]["vlan"] == {"mode": "access", "tag": 11}
    assert ports["t0"]["vlan"]["tag"] == 5
    assert [t["id"] for t in ports["t0"]["vlan"]["trunk-tags"]] == [7, 10, 11]
    assert transaction.apply_state(state, netns_path=node.path).changes == []

    # Traffic: the access port in VLAN 10 reaches the trunk's tagged VLAN 10 and not the
    # access port in VLAN 11 (same subnet: only the tags keep them apart).
    trunk_host, access_host, other_host = (netns_factory("mhvh") for _ in range(3))
    _host_on(node, "t1", trunk_host, "10.80.0.1/24", vid=10)
    _host_on(node, "a1", access_host, "10.80.0.2/24")
    _host_on(node, "n1", other_host, "10.80.0.3/24")
    for dev in ("br0", "t0", "a0", "n0"):  # the policy names no state; don't depend on it
        node.run("ip", "link", "set", dev, "up")
    assert kstate.ping(access_host.name, "10.80.0.1"), "access VLAN 10 -> trunk VLAN 10"
    assert not kstate.ping(access_host.name, "10.80.0.3", timeout=1), "VLAN 10 leaked into 11"
