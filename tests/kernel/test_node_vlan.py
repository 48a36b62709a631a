"""Bridge port VLANs (trunk/access) from a node policy: needs bridge VLAN filtering.

Runs in the Debian-kernel tier; on kernels without CONFIG_BRIDGE_VLAN_FILTERING it skips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import Netns
from multihome.net import bridge_vlan, netns
from multihome.node import current, engine

pytestmark = pytest.mark.netns


def _vlan_filtering(ns: Netns) -> bool:
    with netns.iproute_in(ns.path) as ipr:
        return bridge_vlan.supported(ipr, "mhvlprobe")


def test_trunk_and_access_ports(netns_factory: Any, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIHOME_NODE_DIR", str(tmp_path / "node"))
    node: Netns = netns_factory("mhv")
    if not _vlan_filtering(node):
        pytest.skip("this kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)")
    node.run("ip", "link", "add", "t0", "type", "veth", "peer", "name", "t1")
    node.run("ip", "link", "add", "a0", "type", "veth", "peer", "name", "a1")
    state = {"interfaces": [{"name": "br0", "type": "linux-bridge", "bridge": {"port": [
        {"name": "t0", "vlan": {"mode": "trunk", "enable-native": True, "tag": 5,
                                "trunk-tags": [{"id": 7}, {"id-range": {"min": 10, "max": 11}}]}},
        {"name": "a0", "vlan": {"mode": "access", "tag": 20}}]}}]}
    report = engine.apply_state(state, netns_path=node.path)
    assert "br0: vlan filtering on" in report.changes
    ports = {p["name"]: p for p in next(i for i in current.show(node.path)["interfaces"]
                                        if i["name"] == "br0")["bridge"]["port"]}
    assert ports["a0"]["vlan"] == {"mode": "access", "tag": 20}
    assert ports["t0"]["vlan"]["tag"] == 5
    assert [t["id"] for t in ports["t0"]["vlan"]["trunk-tags"]] == [7, 10, 11]
    assert engine.apply_state(state, netns_path=node.path).changes == []
