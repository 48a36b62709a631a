"""External hosts on VLANs: namespaces on trunk ports of a VLAN-filtering bridge.

The trunk port is made by the bridge plugin itself (vlanTrunk 100 and 200) and the host's
802.1Q sub-interface sits on top, so every tag on the wire was put there by the plugin's
port configuration.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from multihome.net import addr, links
from multihome.net.netns import iproute_in
from support.bridge_harness import Lab
from support.netns import Netns

TRUNK = [{"id": 100}, {"id": 200}]


def add_address(netns_path: str, dev: str, address: str, *, vid: int | None = None) -> str:
    """`address` on `dev`, or on a new 802.1Q interface `<dev>.<vid>` on top of it (up);
    returns the interface that holds it."""
    with iproute_in(netns_path) as ipr:
        link = links.by_name(ipr, dev)
        assert link is not None, dev
        if vid is not None:
            ipr.link("add", ifname=f"{dev}.{vid}", kind="vlan", link=link.index, vlan_id=vid)
            link = links.by_name(ipr, f"{dev}.{vid}")
            assert link is not None
            links.set_up(ipr, link.index)
        addr.add_address(ipr, link.index, ipaddress.ip_interface(address), ifname=link.name)
        return link.name


def external_host(lab: Lab, bridge: str, cid: str, *, vid: int | None, address: str,
                  preserve_default: bool) -> tuple[Netns, dict[str, Any]]:
    """A namespace on a trunk port (100, 200) of `bridge`; `address` on eth0.<vid>
    (or on the untagged eth0 when vid is None). Returns it and the trunk's config."""
    ext = lab.make_ns("mhbe")
    conf = lab.conf(bridge, subnet=None, vlanTrunk=TRUNK, preserveDefaultVlan=preserve_default)
    lab.add(conf, ext, cid=cid)
    add_address(ext.path, "eth0", address, vid=vid)
    return ext, conf
