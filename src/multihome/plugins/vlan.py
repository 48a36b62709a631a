"""The vlan plugin: an 802.1Q link with `vlanId` on `master`, moved into the container.

Keys: master (required), vlanId (0-4094), mtu (at most the master's), linkInContainer, ipam.
"""

from __future__ import annotations

from dataclasses import dataclass

from multihome.cni import version as ver
from multihome.cni.errors import CNIError, InvalidConfig
from multihome.cni.skel import Call
from multihome.net import links, sublinks
from multihome.net.netns import Netlink
from multihome.plugins import conf_keys, stacked

SUPPORTED_VERSIONS = ver.ALL_VERSIONS
PLUGIN = "vlan"


@dataclass(frozen=True)
class VlanConf:
    base: stacked.StackedConf
    vlan_id: int

    def create(self, ipr: Netlink, name: str, lower: int, netns_fd: int | None) -> None:
        sublinks.create_vlan(ipr, name, lower, self.vlan_id, mtu=self.base.mtu,
                             netns_fd=netns_fd)

    def verify(self, link: links.Link) -> None:
        have = link.data.get("IFLA_VLAN_ID")
        if have != self.vlan_id:
            raise CNIError(f"interface {link.name} has VLAN ID {have}, config says "
                           f"{self.vlan_id}")


def parse(call: Call) -> VlanConf:
    base = stacked.parse(call, PLUGIN, default_master=False)
    vlan_id = conf_keys.get_int(call.conf.raw, "vlanId", PLUGIN)
    if not 0 <= vlan_id <= sublinks.MAX_VLAN_ID:
        raise InvalidConfig(f"invalid VLAN ID {vlan_id} (must be between 0 and "
                            f"{sublinks.MAX_VLAN_ID})")
    return VlanConf(base=base, vlan_id=vlan_id)


add, delete, check, status, gc = stacked.entry_points(parse)
