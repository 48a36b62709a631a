"""The tap plugin: a persistent tap device made inside the container namespace.

Keys: mac (also runtimeConfig.mac, args.cni.mac, CNI_ARGS MAC=), mtu, multiQueue,
owner (uid), group (gid), bridge (a bridge in the container namespace to attach the
tap to, as the reference does), ipam (optional).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multihome.cni import version as ver
from multihome.cni.errors import CNIError, InvalidConfig
from multihome.cni.result import Interface, Result
from multihome.cni.skel import Call
from multihome.net import links, netns, sublinks
from multihome.net.netns import netlink
from multihome.plugins import conf_keys, ipam_helper

SUPPORTED_VERSIONS = ver.ALL_VERSIONS
PLUGIN = "tap"
MAX_ID = 2**32 - 2  # (uid_t)-1 means "no owner" to the kernel


@dataclass(frozen=True)
class TapConf:
    mac: str
    mtu: int
    multi_queue: bool
    owner: int | None
    group: int | None
    bridge: str
    ipam_type: str


def _id(raw: dict[str, Any], key: str) -> int | None:
    if raw.get(key) is None:
        return None
    value = conf_keys.get_int(raw, key, PLUGIN)
    if not 0 <= value <= MAX_ID:
        raise InvalidConfig(f"tap {key} {value} is not a valid id (0-{MAX_ID})")
    return value


def parse(call: Call) -> TapConf:
    raw = call.conf.raw
    mac = conf_keys.get_mac(call, PLUGIN) or None
    return TapConf(mac=mac or "", mtu=conf_keys.get_mtu(raw, PLUGIN),
                   multi_queue=conf_keys.get_bool(raw, "multiQueue", PLUGIN),
                   owner=_id(raw, "owner"), group=_id(raw, "group"),
                   bridge=conf_keys.get_ifname(raw, "bridge", PLUGIN),
                   ipam_type=conf_keys.ipam_type(call))


def _create(conf: TapConf, ifname: str) -> links.Link:
    """In the container netns (thread entered): the tap, its MTU/MAC, its bridge."""
    with netlink() as ipr:
        if links.by_name(ipr, ifname) is not None:
            raise CNIError(f"the container already has an interface named {ifname}")
        br = None
        if conf.bridge:
            br = links.by_name(ipr, conf.bridge)
            if br is None or br.kind != "bridge":
                raise InvalidConfig(f"tap: bridge {conf.bridge!r} not found in the container "
                                    "network namespace")
        sublinks.create_tap(ipr, ifname, multi_queue=conf.multi_queue, owner=conf.owner,
                            group=conf.group)
        link = links.by_name(ipr, ifname)
        if link is None:
            raise CNIError(f"tap {ifname} vanished right after creation")
        try:
            if conf.mtu:
                links.set_mtu(ipr, link.index, conf.mtu)
            if conf.mac:
                links.set_mac(ipr, link.index, conf.mac)
            if br is not None:
                links.set_master(ipr, link.index, br.index)
        except CNIError:
            links.delete(ipr, link.index)
            raise
        return links.by_index(ipr, link.index) or link


def add(call: Call) -> Result:
    conf = parse(call)
    cmd = call.cmd
    with netns.opened(cmd.netns) as nsfd:
        with netns.entered(nsfd):
            link = _create(conf, cmd.ifname)
        # The socket outlives the rollback (contexts exit in reverse): the undo needs it.
        with netns.iproute_in(nsfd) as cipr, ipam_helper.rollback() as undo:
            undo.append(lambda: links.delete(cipr, link.index))
            result = Result(cni_version=call.conf.cni_version, interfaces=[
                Interface(name=cmd.ifname, mac=link.mac, sandbox=cmd.netns)])
            if conf.ipam_type:
                ipam_helper.apply(ipam_helper.add(call, conf.ipam_type, undo), result, cipr,
                                  nsfd, link)
            else:
                links.set_up(cipr, link.index)
            return result


def delete(call: Call) -> None:
    conf = parse(call)
    cmd = call.cmd
    ipam_helper.run_if_set(call, conf.ipam_type, "DEL")
    ipam_helper.delete_container_link(cmd.netns, cmd.ifname)


def check(call: Call) -> None:
    conf = parse(call)
    cmd = call.cmd
    prev = ipam_helper.prev_for_check(call, conf.ipam_type)
    with netns.iproute_in(cmd.netns) as cipr:
        link = links.by_name(cipr, cmd.ifname)
        if link is None or link.kind != "tun":
            raise CNIError(f"container interface {cmd.ifname} not found (or not a tap)")
        for key, want in (("IFLA_TUN_OWNER", conf.owner), ("IFLA_TUN_GROUP", conf.group),
                          ("IFLA_TUN_MULTI_QUEUE", int(conf.multi_queue))):
            if want is not None and link.data.get(key) != want:
                raise CNIError(f"tap {cmd.ifname} has {key} {link.data.get(key)}, config "
                               f"says {want}")
        ipam_helper.check_container(cipr, link, prev, cmd.container_id)


status = ipam_helper.ipam_only(parse, "STATUS")
gc = ipam_helper.ipam_only(parse, "GC")
