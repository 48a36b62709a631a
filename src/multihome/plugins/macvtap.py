"""The macvtap plugin (KubeVirt macvtap-cni): a macvtap on a lower device for a VM NIC.

Keys: master (the lower device; runtimeConfig.deviceID or `deviceID` from a device plugin
wins), mode (bridge/private/vepa/passthru, default bridge), mtu, promiscMode, mac. The
macvtap is made on the host, on the lower device, then moved into the container and
renamed to CNI_IFNAME, as macvtap-cni does. No IPAM: the VM configures its own NIC.
"""

from __future__ import annotations

from dataclasses import dataclass

from multihome.cni import version as ver
from multihome.cni.errors import CNIError, InvalidConfig, NotAvailable
from multihome.cni.result import Interface, Result
from multihome.cni.skel import Call
from multihome.net import links, netns, sublinks
from multihome.net.netns import netlink
from multihome.plugins import conf_keys, ipam_helper

SUPPORTED_VERSIONS = ver.ALL_VERSIONS
PLUGIN = "macvtap"


@dataclass(frozen=True)
class MacvtapConf:
    master: str
    mode: str
    mtu: int
    promisc: bool
    mac: str


def parse(call: Call) -> MacvtapConf:
    raw = call.conf.raw
    device_id = call.conf.runtime_config.get("deviceID") or conf_keys.get_str(
        raw, "deviceID", PLUGIN)
    if not isinstance(device_id, str):
        raise InvalidConfig(f"runtimeConfig.deviceID must be a string, got {device_id!r}")
    master = device_id or conf_keys.get_ifname(raw, "master", PLUGIN)
    if not master:
        raise InvalidConfig('macvtap: set "master" (or deviceID) to the lower device')
    mac = conf_keys.get_mac(call, PLUGIN) or None
    return MacvtapConf(
        master=conf_keys.get_ifname({"master": master}, "master", PLUGIN),
        mode=conf_keys.get_choice(raw, "mode", PLUGIN, sublinks.MACVLAN_MODES, "bridge"),
        mtu=conf_keys.get_mtu(raw, PLUGIN),
        promisc=conf_keys.get_bool(raw, "promiscMode", PLUGIN),
        mac=mac or "")


def add(call: Call) -> Result:
    conf = parse(call)
    cmd = call.cmd
    with netns.opened(cmd.netns) as nsfd, netlink() as ipr, netns.iproute_in(nsfd) as cipr, \
                ipam_helper.rollback() as undo:
        if links.by_name(cipr, cmd.ifname) is not None:
            raise CNIError(f"container {cmd.container_id} already has an interface named "
                           f"{cmd.ifname}")
        lower = sublinks.lower_link(ipr, conf.master, "macvtap lower device")
        if conf.mtu > lower.mtu:
            raise InvalidConfig(f"invalid MTU {conf.mtu}: must be between 0 and the "
                                f"lower device {lower.name} MTU ({lower.mtu})")
        tmp = "mvt" + links.random_veth_name()[4:]
        sublinks.create_macvlan(ipr, tmp, lower.index, conf.mode, mtu=conf.mtu,
                                mac=conf.mac, tap=True)
        undo.append(lambda: links.delete_by_name(ipr, tmp))
        made = links.by_name(ipr, tmp)
        if made is None:
            raise CNIError(f"macvtap {tmp} vanished right after creation")
        links.move_to_netns(ipr, made.index, nsfd, cmd.ifname)
        undo.append(lambda: links.delete_by_name(cipr, cmd.ifname))
        link = links.by_name(cipr, cmd.ifname)
        if link is None:
            raise CNIError(f"macvtap {cmd.ifname} vanished while moving into the container")
        if conf.promisc:
            links.set_promisc(cipr, link.index, True)
        links.set_up(cipr, link.index)
        return Result(cni_version=call.conf.cni_version, interfaces=[
            Interface(name=cmd.ifname, mac=link.mac, sandbox=cmd.netns)])


def delete(call: Call) -> None:
    cmd = call.cmd
    ipam_helper.delete_container_link(cmd.netns, cmd.ifname)


def check(call: Call) -> None:
    conf = parse(call)
    cmd = call.cmd
    with netns.iproute_in(cmd.netns) as cipr:
        link = links.by_name(cipr, cmd.ifname)
        if link is None or link.kind != "macvtap":
            raise CNIError(f"container interface {cmd.ifname} not found (or not a macvtap)")
        if sublinks.macvlan_mode(link) != conf.mode:
            raise CNIError(f"macvtap {cmd.ifname} is in mode {sublinks.macvlan_mode(link)}, "
                           f"config says {conf.mode}")
        if conf.promisc and not link.promisc:
            raise CNIError(f"macvtap {cmd.ifname} is not in promiscuous mode")


def status(call: Call) -> None:
    conf = parse(call)
    with netlink() as ipr:
        if links.by_name(ipr, conf.master) is None:
            raise NotAvailable(f"macvtap lower device {conf.master} does not exist")


def gc(call: Call) -> None:
    parse(call)  # nothing outlives its namespace; still refuse a bad config
