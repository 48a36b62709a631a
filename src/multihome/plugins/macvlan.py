"""The macvlan plugin: a macvlan on `master` (default: the default-route interface).

Keys: master, mode (bridge/private/vepa/passthru), mtu, mac (also runtimeConfig.mac,
args.cni.mac, CNI_ARGS MAC=), linkInContainer, ipam (optional: without it the link is
only brought up, as in the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyroute2 import IPRoute

from multihome.cni import version as ver
from multihome.cni.errors import CNIError
from multihome.cni.result import Result
from multihome.cni.skel import Call
from multihome.net import links, sublinks
from multihome.plugins import conf_keys, stacked

SUPPORTED_VERSIONS = ver.ALL_VERSIONS
PLUGIN = "macvlan"


@dataclass(frozen=True)
class MacvlanConf:
    base: stacked.StackedConf
    mode: str
    mac: str


def parse(call: Call) -> MacvlanConf:
    base = stacked.parse(call, PLUGIN, default_master=True)
    mode = conf_keys.get_choice(call.conf.raw, "mode", PLUGIN, sublinks.MACVLAN_MODES, "bridge")
    mac = conf_keys.get_mac(call, PLUGIN) or None
    return MacvlanConf(base=base, mode=mode, mac=mac or "")


def add(call: Call) -> Result:
    conf = parse(call)

    def create(ipr: IPRoute, name: str, lower: int, nsfd: int | None) -> None:
        sublinks.create_macvlan(ipr, name, lower, conf.mode, mtu=conf.base.mtu, mac=conf.mac,
                                netns_fd=nsfd)

    return stacked.add(call, conf.base, create)


def delete(call: Call) -> None:
    stacked.delete(call, parse(call).base)


def check(call: Call) -> None:
    conf = parse(call)

    def verify(link: links.Link) -> None:
        if sublinks.macvlan_mode(link) != conf.mode:
            raise CNIError(f"interface {link.name} is in macvlan mode "
                           f"{sublinks.macvlan_mode(link)}, config says {conf.mode}")

    stacked.check(call, conf.base, verify)


def status(call: Call) -> None:
    stacked.status(call, parse(call).base)


def gc(call: Call) -> None:
    stacked.gc(call, parse(call).base)
