"""The sriov plugin: lend an SR-IOV VF (chosen by PCI address) to a container.

Keys: deviceID (or runtimeConfig.deviceID, the VF's PCI address), vlan, vlanQoS, mac
(also runtimeConfig.mac / args.cni.mac), spoofchk, trust ("on"/"off"), link_state
(auto/enable/disable), min_tx_rate, max_tx_rate (Mbps), ipam, sysfsRoot (tests), dataDir.
VF settings are made on the PF over netlink and only when asked for; their previous
values, the VF's name, MAC and MTU are saved and put back on DEL. A VF without a kernel
netdev (DPDK-bound) gets its settings but is not moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multihome.cni import version as ver
from multihome.cni.errors import CNIError, InvalidConfig
from multihome.cni.result import Interface, Result
from multihome.cni.skel import Call
from multihome.net import links, netns, sublinks, sysfs, vf
from multihome.net.netns import Netlink, netlink
from multihome.plugins import conf_keys, ipam_helper, netdev_move, state_file

SUPPORTED_VERSIONS = ver.ALL_VERSIONS
PLUGIN = "sriov"
DEFAULT_DATA_DIR = "/var/lib/cni/sriov"
ON_OFF = ("on", "off")


@dataclass(frozen=True)
class SriovConf:
    pci: str
    settings: vf.VfSettings
    sysfs_root: str
    data_dir: str
    ipam_type: str


def _on_off(raw: dict[str, Any], key: str) -> bool | None:
    if raw.get(key) is None:
        return None
    return conf_keys.get_choice(raw, key, PLUGIN, ON_OFF, "on") == "on"


def _opt_int(raw: dict[str, Any], key: str, hi: int) -> int | None:
    if raw.get(key) is None:
        return None
    value = conf_keys.get_int(raw, key, PLUGIN)
    if not 0 <= value <= hi:
        raise InvalidConfig(f"invalid sriov {key} {value}: must be between 0 and {hi}")
    return value


def parse(call: Call) -> SriovConf:
    raw = call.conf.raw
    pci = call.conf.runtime_config.get("deviceID") or conf_keys.get_str(raw, "deviceID", PLUGIN)
    if not pci or not isinstance(pci, str):
        raise InvalidConfig("sriov: deviceID (the VF's PCI address) is required, in the config "
                            "or runtimeConfig.deviceID")
    qos = _opt_int(raw, "vlanQoS", 7)
    vlan_id = _opt_int(raw, "vlan", sublinks.MAX_VLAN_ID)
    if qos and not vlan_id:
        raise InvalidConfig("sriov vlanQoS needs a non-zero vlan")
    lo, hi = _opt_int(raw, "min_tx_rate", 2**32 - 1), _opt_int(raw, "max_tx_rate", 2**32 - 1)
    if lo and hi and lo > hi:
        raise InvalidConfig(f"sriov min_tx_rate {lo} is greater than max_tx_rate {hi}")
    link_state = conf_keys.get_str(raw, "link_state", PLUGIN) or None
    if link_state is not None and link_state not in vf.LINK_STATES:
        raise InvalidConfig(f"unknown sriov link_state {link_state!r}: expected one of "
                            f"{', '.join(vf.LINK_STATES)}")
    mac = conf_keys.get_mac(call, PLUGIN) or None
    settings = vf.VfSettings(mac=mac, vlan=vlan_id, qos=qos, spoofchk=_on_off(raw, "spoofchk"),
                             trust=_on_off(raw, "trust"), link_state=link_state,
                             min_tx_rate=lo, max_tx_rate=hi)
    return SriovConf(pci=pci, settings=settings,
                     sysfs_root=conf_keys.get_path(raw, "sysfsRoot", PLUGIN),
                     data_dir=conf_keys.get_path(raw, "dataDir", PLUGIN) or DEFAULT_DATA_DIR,
                     ipam_type=conf_keys.ipam_type(call))


def _pf(ipr: Netlink, fn: sysfs.VirtualFunction) -> links.Link:
    pf = links.by_name(ipr, fn.pf_netdev)
    if pf is None:
        raise CNIError(f"PF netdev {fn.pf_netdev} of VF {fn.pci} is not in this namespace")
    return pf


def _set_vf(ipr: Netlink, fn: sysfs.VirtualFunction, want: vf.VfSettings,
            state: dict[str, Any]) -> None:
    """Save the VF's current settings in `state`, then apply `want` (if anything)."""
    if want.empty():
        return
    pf = _pf(ipr, fn)
    before = vf.read(ipr, pf.index, fn.index)
    if before is None:
        raise CNIError(f"PF {pf.name} reports no VF {fn.index}, so VF settings "
                       f"{sorted(want.to_dict())} cannot be made: its driver has no SR-IOV "
                       "netlink support; drop these keys or use an SR-IOV capable NIC")
    state["vf"] = {k: v for k, v in before.to_dict().items() if k in want.to_dict()}
    vf.apply(ipr, pf.index, pf.name, fn.index, want)


def add(call: Call) -> Result:
    conf = parse(call)
    cmd = call.cmd
    fn = sysfs.virtual_function(sysfs.root(conf.sysfs_root), conf.pci)
    state: dict[str, Any] = {"pci": fn.pci, "pf": fn.pf_netdev, "index": fn.index,
                             "netdev": fn.netdev}
    with netlink() as ipr, ipam_helper.rollback() as undo:
        _set_vf(ipr, fn, conf.settings, state)
        undo.append(lambda: _restore_vf(ipr, state))
        if not fn.netdev:  # DPDK: the VF belongs to a userspace driver, nothing to move
            state_file.save(conf.data_dir, cmd.container_id, cmd.ifname, state)
            return Result(cni_version=call.conf.cni_version,
                          interfaces=[Interface(name=cmd.ifname, pci_id=fn.pci)])
        link = links.by_name(ipr, fn.netdev)
        if link is None:
            raise InvalidConfig(f"VF netdev {fn.netdev} of {fn.pci} is not in the host "
                                "network namespace (already in use?)")
        state.update(mac=link.mac, mtu=link.mtu)
        with netns.opened(cmd.netns) as nsfd, netns.iproute_in(nsfd) as cipr:
            if links.by_name(cipr, cmd.ifname) is not None:
                raise CNIError(f"container {cmd.container_id} already has an interface "
                               f"named {cmd.ifname}")
            moved = netdev_move.move_in(ipr, cipr, link, nsfd, cmd.ifname)
            undo.append(lambda: _return_netdev(cmd.netns, cmd.ifname, state))
            if conf.settings.mac:
                links.set_mac(cipr, moved.index, conf.settings.mac)
            state_file.save(conf.data_dir, cmd.container_id, cmd.ifname, state)
            undo.append(lambda: state_file.remove(conf.data_dir, cmd.container_id,
                                                  cmd.ifname))
            result = Result(cni_version=call.conf.cni_version, interfaces=[
                Interface(name=cmd.ifname, mac=conf.settings.mac or moved.mac,
                          sandbox=cmd.netns, pci_id=fn.pci)])
            if conf.ipam_type:
                ipam_helper.apply(ipam_helper.add(call, conf.ipam_type, undo), result,
                                  cipr, nsfd, moved)
            return result


def _restore_vf(ipr: Netlink, state: dict[str, Any]) -> None:
    saved = state.get("vf")
    if not saved:
        return
    pf = links.by_name(ipr, state["pf"])
    if pf is not None:
        vf.apply(ipr, pf.index, pf.name, state["index"], vf.VfSettings.from_dict(saved))


def _return_netdev(netns_path: str, ifname: str, state: dict[str, Any]) -> None:
    """Back to the host under its own name, with its own MAC and MTU."""
    name = netdev_move.move_out(netns_path, ifname) if netns_path else None
    with netlink() as ipr:
        if name is None:
            name = netdev_move.recover_fallen(ipr, lambda lk: lk.alias == state["netdev"])
        link = links.by_name(ipr, name) if name else None
        if link is None:
            return
        if state.get("mac") and link.mac != state["mac"]:
            links.set_mac(ipr, link.index, state["mac"])
        if state.get("mtu") and link.mtu != state["mtu"]:
            links.set_mtu(ipr, link.index, state["mtu"])


def delete(call: Call) -> None:
    conf = parse(call)
    cmd = call.cmd
    ipam_helper.run_if_set(call, conf.ipam_type, "DEL")
    state = state_file.load(conf.data_dir, cmd.container_id, cmd.ifname)
    if state is None:
        return  # ADD never finished, or DEL already ran
    if state.get("netdev"):
        _return_netdev(cmd.netns, cmd.ifname, state)
    with netlink() as ipr:
        _restore_vf(ipr, state)
    state_file.remove(conf.data_dir, cmd.container_id, cmd.ifname)


def check(call: Call) -> None:
    conf = parse(call)
    cmd = call.cmd
    prev = ipam_helper.prev_for_check(call, conf.ipam_type)
    if state_file.load(conf.data_dir, cmd.container_id, cmd.ifname) is None:
        raise CNIError(f"no saved state for {cmd.container_id}/{cmd.ifname}: was ADD run?")
    fn = sysfs.virtual_function(sysfs.root(conf.sysfs_root), conf.pci)
    if not fn.netdev:
        return
    with netns.iproute_in(cmd.netns) as cipr:
        link = links.by_name(cipr, cmd.ifname)
        if link is None:
            raise CNIError(f"VF interface {cmd.ifname} not found in {cmd.netns}")
        ipam_helper.check_container(cipr, link, prev, cmd.container_id)


status = ipam_helper.ipam_only(parse, "STATUS")
gc = ipam_helper.ipam_only(parse, "GC")
