"""External hosts on VLANs: namespaces on trunk ports of a VLAN-filtering bridge.

The trunk port is made by the bridge plugin itself (vlanTrunk 100 and 200) and the host's
802.1Q sub-interface sits on top, so every tag on the wire was put there by the plugin's
port configuration.
"""

from __future__ import annotations

from typing import Any

from bridge_harness import Lab

from conftest import Netns

TRUNK = [{"id": 100}, {"id": 200}]


def external_host(lab: Lab, bridge: str, cid: str, *, vid: int | None, address: str,
                  preserve_default: bool) -> tuple[Netns, dict[str, Any]]:
    """A namespace on a trunk port (100, 200) of `bridge`; `address` on eth0.<vid>
    (or on the untagged eth0 when vid is None). Returns it and the trunk's config."""
    ext = lab.make_ns("mhbe")
    conf = lab.conf(bridge, subnet=None, vlanTrunk=TRUNK, preserveDefaultVlan=preserve_default)
    lab.add(conf, ext, cid=cid)
    dev = "eth0"
    if vid is not None:
        dev = f"eth0.{vid}"
        ext.run("ip", "link", "add", "link", "eth0", "name", dev, "type", "vlan", "id", str(vid))
        ext.run("ip", "link", "set", dev, "up")
    ext.run("ip", "addr", "add", address, "dev", dev)
    return ext, conf
