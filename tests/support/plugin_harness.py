"""Running any built-in plugin in-process, through `skel.dispatch`, inside a node namespace.

The node namespace plays the host: master devices, host devices and PFs live there, so
nothing a test makes touches the real host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from multihome.cni.skel import dispatch
from multihome.net import netns
from multihome.plugins.registry import lookup
from support import kstate
from support.netns import Netns


@dataclass
class Outcome:
    rc: int
    out: Any

    def ok(self) -> Any:
        assert self.rc == 0, f"plugin failed: {self.out}"
        return self.out

    def error(self, code: int) -> dict[str, Any]:
        assert self.rc != 0, f"expected error {code}, plugin succeeded: {self.out}"
        assert isinstance(self.out, dict) and self.out.get("code") == code, self.out
        return self.out


def call(node: Netns, command: str, conf: dict[str, Any], *, netns_path: str = "",
         cid: str = "cid1", ifname: str = "eth0", args: str = "") -> Outcome:
    plugin = lookup(conf["type"])
    assert plugin is not None, f"{conf['type']} is not a built-in plugin"
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_IFNAME": ifname,
           "CNI_PATH": "/usr/lib/cni"}
    if netns_path:
        env["CNI_NETNS"] = netns_path
    if args:
        env["CNI_ARGS"] = args
    with netns.entered(node.path):
        rc, out = dispatch(plugin, env, json.dumps(conf).encode())
    return Outcome(rc, json.loads(out) if out else None)


def conf(plugin: str, version: str = "1.0.0", **keys: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "mhnet", "type": plugin, **keys}


def static_ipam(*addresses: str) -> dict[str, Any]:
    return {"type": "static", "addresses": [{"address": a} for a in addresses]}


def veth(ns: Netns, name: str, peer_ns: Netns, peer: str, *, peer_addr: str = "") -> None:
    """A veth `name` in `ns` (up) whose peer `peer` is in `peer_ns` (up, with an address)."""
    ns.run("ip", "link", "add", name, "type", "veth", "peer", "name", peer, "netns",
           peer_ns.name)
    ns.run("ip", "link", "set", name, "up")
    peer_ns.run("ip", "link", "set", peer, "up")
    if peer_addr:
        peer_ns.run("ip", "addr", "add", peer_addr, "dev", peer)


def only_lo(ns: Netns) -> bool:
    return set(kstate.links(ns.name)) == {"lo"}


def link_names(ns: Netns) -> set[str]:
    return set(kstate.links(ns.name))

