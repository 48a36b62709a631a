"""Driving the bridge plugin in-process, through `skel.dispatch`, with a namespace as node.

Each test gets a `Lab`: a node namespace where the plugin runs (its bridge, sysctls
and nft tables never touch the real host) and container namespaces to attach. The lab's
fixture (tests/integration/conftest.py) deletes every bridge it made and then the
namespaces.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import multihome.plugins.bridge as bridge_plugin
from multihome.cni.skel import dispatch
from multihome.net import links, netns
from multihome.net.netns import iproute_in
from support import kstate
from support.netns import Netns, unique
from support.plugin_harness import Outcome


@dataclass
class Lab:
    node: Netns
    make_ns: Callable[..., Netns]
    data_dir: Path
    bridges: set[str] = field(default_factory=set)

    def bridge_name(self) -> str:
        name = unique("mhbr")
        self.bridges.add(name)
        return name

    def conf(self, bridge: str, *, subnet: str | None = "10.70.0.0/24", version: str = "1.0.0",
             name: str = "mhbnet", **keys: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {"cniVersion": version, "name": name, "type": "bridge",
                                "bridge": bridge, **keys}
        if subnet is not None and "ipam" not in keys:
            conf["ipam"] = {"type": "host-local", "subnet": subnet,
                            "dataDir": str(self.data_dir)}
        return conf

    def call(self, command: str, conf: dict[str, Any], ns: Netns | None = None, *,
             cid: str = "cid1", ifname: str = "eth0", netns_path: str | None = None,
             args: str = "") -> Outcome:
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_IFNAME": ifname,
               "CNI_PATH": "/usr/lib/cni"}
        path = netns_path if netns_path is not None else (ns.path if ns else "")
        if path:
            env["CNI_NETNS"] = path
        if args:
            env["CNI_ARGS"] = args
        with netns.entered(self.node.path):
            rc, out = dispatch(bridge_plugin, env, json.dumps(conf).encode())
        return Outcome(rc, json.loads(out) if out else None)

    def add(self, conf: dict[str, Any], ns: Netns, **kw: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.call("ADD", conf, ns, **kw).ok()
        return result

    def node_links(self) -> dict[str, dict[str, Any]]:
        return kstate.links(self.node.name)

    def allocations(self) -> list[str]:
        """host-local files naming an IP (what a leak would leave)."""
        return sorted(p.name for p in self.data_dir.rglob("*")
                      if p.is_file() and p.name not in ("lock",)
                      and not p.name.startswith("last_reserved_ip"))

    def assert_clean(self, *containers: Netns) -> None:
        """No veth on the node, no spoof/masq rules, no IP allocation, no container link."""
        veths = [n for n, lk in self.node_links().items()
                 if lk.get("linkinfo", {}).get("info_kind") == "veth"]
        assert veths == [], f"veths left on the node: {veths}"
        tables = kstate.nft_tables(self.node.name)
        assert not any("multihome_masq" in t for t in tables), tables
        rules = kstate.nft_rules(self.node.name) if "bridge nat" in tables else []
        assert rules == [], f"nft rules left: {rules}"
        assert "bridge nat" not in tables, tables
        assert self.allocations() == [], f"IP allocations left: {self.allocations()}"
        for ns in containers:
            if Path(ns.path).exists():
                assert set(kstate.links(ns.name)) == {"lo"}, kstate.links(ns.name).keys()

    def cleanup(self) -> None:
        if not netns.exists(self.node.path):
            return
        with iproute_in(self.node.path) as ipr:
            for name in self.bridges:
                links.delete_by_name(ipr, name)
