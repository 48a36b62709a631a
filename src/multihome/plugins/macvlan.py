"""The macvlan plugin: a macvlan on `master` (default: the default-route interface).

Keys: master, mode (bridge/private/vepa/passthru), mtu, mac (also runtimeConfig.mac,
args.cni.mac, CNI_ARGS MAC=), linkInContainer, ipam (optional: without it the link is
only brought up, as in the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

from multihome.cni import version as ver
from multihome.cni.errors import CNIError
from multihome.cni.skel import Call
from multihome.net import links, sublinks
from multihome.net.netns import Netlink
from multihome.plugins import conf_keys, stacked

SUPPORTED_VERSIONS = ver.ALL_VERSIONS
PLUGIN = "macvlan"


@dataclass(frozen=True)
class MacvlanConf:
    base: stacked.StackedConf
    mode: str
    mac: str

    def create(self, ipr: Netlink, name: str, lower: int, netns_fd: int | None) -> None:
        sublinks.create_macvlan(ipr, name, lower, self.mode, mtu=self.base.mtu, mac=self.mac,
                                netns_fd=netns_fd)

    def verify(self, link: links.Link) -> None:
        if sublinks.macvlan_mode(link) != self.mode:
            raise CNIError(f"interface {link.name} is in macvlan mode "
                           f"{sublinks.macvlan_mode(link)}, config says {self.mode}")


def parse(call: Call) -> MacvlanConf:
    base = stacked.parse(call, PLUGIN, default_master=True)
    mode = conf_keys.get_choice(call.conf.raw, "mode", PLUGIN, sublinks.MACVLAN_MODES, "bridge")
    mac = conf_keys.get_mac(call, PLUGIN) or None
    return MacvlanConf(base=base, mode=mode, mac=mac or "")


add, delete, check, status, gc = stacked.entry_points(parse)
