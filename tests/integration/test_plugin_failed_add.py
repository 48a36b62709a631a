"""A failed ADD leaves the node and the pod exactly as they were, in every plugin.

Three ways an ADD fails after it has started to change things:
- its result cannot be written in the config's cniVersion (0.1.0/0.2.0 results hold only
  addresses, so an attachment without IPAM cannot be reported in them);
- IPAM refuses (here: static IPAM with a route whose destination is not a CIDR);
- a late step fails (here: a route whose gateway is not reachable from the interface,
  which the kernel refuses after the addresses were set).
Each case compares the links of node and pod (names, masters, aliases) and the node's
nft rules before and after the failed call.
"""

from __future__ import annotations

from typing import Any

import pytest

from support import kstate
from support.netns import Netns, unique
from support.plugin_harness import call, conf, veth

pytestmark = pytest.mark.netns

ADDR = "10.84.0.2/24"
FAILURES: dict[str, tuple[str, dict[str, Any]]] = {
    "result not convertible to 0.2.0": ("0.2.0", {}),
    "result not convertible to 0.1.0": ("0.1.0", {}),
    "IPAM refuses": ("1.0.0", {"ipam": {"type": "static", "addresses": [{"address": ADDR}],
                                        "routes": [{"dst": "not-a-cidr"}]}}),
    "late route failure": ("1.0.0", {"ipam": {
        "type": "static", "addresses": [{"address": ADDR}],
        "routes": [{"dst": "10.99.0.0/16", "gw": "192.168.251.1"}]}}),
}


def snapshot(node: Netns, cont: Netns) -> dict[str, Any]:
    def links(ns: Netns) -> dict[str, tuple[Any, ...]]:
        return {name: (link.get("master"), link.get("ifalias"), link.get("link_type"))
                for name, link in kstate.links(ns.name).items()}

    rules = sorted(str(r.get("comment", "")) + str(r.get("expr", ""))
                   for r in kstate.nft_rules(node.name))
    return {"node": links(node), "pod": links(cont), "nft chains":
            sorted(kstate.nft_chains(node.name)), "nft rules": rules}


@pytest.fixture
def world(netns_factory: Any) -> tuple[Netns, Netns, str, str]:
    """A node with a bridge and a spare veth end (a master / a host device), and a pod."""
    node, ext, cont = netns_factory("mhfn"), netns_factory("mhfe"), netns_factory("mhfc")
    bridge, dev = unique("fbr"), unique("fdv")
    node.run("ip", "link", "add", bridge, "type", "bridge")
    veth(node, dev, ext, "ext0")
    return node, cont, bridge, dev


def plugin_conf(plugin: str, bridge: str, dev: str) -> dict[str, Any]:
    confs: dict[str, dict[str, Any]] = {
        "bridge": {"type": "bridge", "bridge": bridge, "macspoofchk": True},
        "macvlan": {"type": "macvlan", "master": dev},
        "macvtap": {"type": "macvtap", "master": dev},
        "host-device": {"type": "host-device", "device": dev},
        "tap": {"type": "tap"},
    }
    return confs[plugin]


# macvtap has no IPAM (the VM configures its own NIC): only its conversion can fail late.
CASES = [(plugin, failure) for plugin in ("bridge", "host-device", "macvlan", "macvtap", "tap")
         for failure in sorted(FAILURES)
         if not (plugin == "macvtap" and "ipam" in FAILURES[failure][1])]


@pytest.mark.parametrize(("plugin", "failure"), CASES)
def test_failed_add_undoes_everything(world: tuple[Netns, Netns, str, str], plugin: str,
                                      failure: str) -> None:
    node, cont, bridge, dev = world
    version, extra = FAILURES[failure]
    keys = {**plugin_conf(plugin, bridge, dev), **extra}
    c = conf(keys.pop("type"), version, **keys)
    before = snapshot(node, cont)
    out = call(node, "ADD", c, netns_path=cont.path, cid=unique("cid"), ifname="net1")
    assert out.rc != 0 and out.out["code"] in (1, 7, 999), out.out
    assert snapshot(node, cont) == before
