"""Bad input for each plugin: the right CNI code, and nothing left behind."""

from __future__ import annotations

from typing import Any

import pytest

from support.netns import unique
from support.plugin_harness import call, conf, link_names, only_lo, veth

pytestmark = pytest.mark.netns

MASTER = "@master"  # replaced by the test's real master name


@pytest.mark.parametrize(("plugin", "keys", "ifname", "code", "needle"), [
    ("macvlan", {"master": MASTER, "mode": "turbo"}, "eth0", 7, "unknown macvlan mode"),
    ("macvlan", {"master": "nosuchmaster0"}, "eth0", 7, "does not exist"),
    ("macvlan", {"master": "averyveryverylongname"}, "eth0", 7, "longer than 15"),
    ("macvlan", {"master": MASTER}, "averyveryverylongname", 4, "longer than 15"),
    ("ipvlan", {"master": MASTER, "mode": "l4", "ipam": {"type": "static"}}, "eth0", 7,
     "unknown ipvlan mode"),
    ("ipvlan", {"master": MASTER}, "eth0", 7, "needs an \"ipam\""),
    ("vlan", {"vlanId": 10}, "eth0", 7, '"master" key is required'),
    ("vlan", {"master": MASTER, "vlanId": 4095}, "eth0", 7, "invalid VLAN ID 4095"),
    ("vlan", {"master": "nosuchmaster0", "vlanId": 5}, "eth0", 7, "does not exist"),
    ("macvtap", {"master": MASTER, "mode": "turbo"}, "eth0", 7, "unknown macvtap mode"),
    ("macvtap", {}, "eth0", 7, "master"),
    ("macvtap", {"master": "nosuchmaster0"}, "eth0", 7, "does not exist"),
    ("tap", {"owner": -1}, "eth0", 7, "not a valid id"),
    ("tap", {"multiQueue": "yes"}, "eth0", 7, "true or false"),
    ("host-device", {"device": "nosuchdev0"}, "eth0", 7, "not found"),
    ("host-device", {"hwaddr": "zz"}, "eth0", 7, "invalid MAC"),
    ("tuning", {"prevResult": {"cniVersion": "1.0.0"}, "txQLen": -1}, "eth0", 7, "txQLen"),
])
def test_bad_input(netns_factory: Any, plugin: str, keys: dict[str, Any], ifname: str,
                   code: int, needle: str) -> None:
    node, ext, cont = netns_factory("mhxn"), netns_factory("mhxe"), netns_factory("mhxc")
    master = unique("mx")
    veth(node, master, ext, "ext0")
    before = link_names(node)
    keys = {k: (master if v == MASTER else v) for k, v in keys.items()}
    err = call(node, "ADD", conf(plugin, **keys), netns_path=cont.path, ifname=ifname)
    assert needle in err.error(code)["msg"]
    assert only_lo(cont) and link_names(node) == before
