"""The ipvlan plugin: an ipvlan (l2, l3 or l3s) on `master`.

Keys: master (default: the default-route interface; when chained, the one host-side
interface of prevResult), mode, mtu, linkInContainer, ipam. IPAM is required unless the
plugin is chained after one that already allocated addresses (prevResult with IPs).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from multihome.cni import version as ver
from multihome.cni.errors import CNIError, InvalidConfig
from multihome.cni.skel import Call
from multihome.net import links, sublinks
from multihome.net.netns import Netlink
from multihome.plugins import conf_keys, stacked

SUPPORTED_VERSIONS = ver.ALL_VERSIONS
PLUGIN = "ipvlan"


@dataclass(frozen=True)
class IpvlanConf:
    base: stacked.StackedConf
    mode: str

    def create(self, ipr: Netlink, name: str, lower: int, netns_fd: int | None) -> None:
        sublinks.create_ipvlan(ipr, name, lower, self.mode, mtu=self.base.mtu,
                               netns_fd=netns_fd)

    def verify(self, link: links.Link) -> None:
        if sublinks.ipvlan_mode(link) != self.mode:
            raise CNIError(f"interface {link.name} is in ipvlan mode "
                           f"{sublinks.ipvlan_mode(link)}, config says {self.mode}")


def parse(call: Call) -> IpvlanConf:
    base = stacked.parse(call, PLUGIN, default_master=True)
    prev = call.conf.prev_result
    if not base.master and prev is not None:
        host_side = [i for i in prev.interfaces if not i.sandbox]
        if len(host_side) == 1:
            base = dataclasses.replace(base, master=host_side[0].name)
    if call.cmd.command == "ADD" and not base.ipam_type and (prev is None or not prev.ips):
        raise InvalidConfig("ipvlan needs an \"ipam\" section (or a prevResult with IPs when "
                            "chained): an ipvlan link without addresses cannot pass traffic")
    mode = conf_keys.get_choice(call.conf.raw, "mode", PLUGIN, sublinks.IPVLAN_MODES, "l2")
    return IpvlanConf(base=base, mode=mode)


add, delete, check, status, gc = stacked.entry_points(parse)
