"""The host-device plugin: move an existing host device into the container.

Pick it by `device` (name), `hwaddr`, `kernelpath` (sysfs device path), `pciBusID` or
`runtimeConfig.deviceID` (a PCI address from a device plugin). A PCI device with no
kernel netdev is DPDK-bound: it is not moved and the result carries its PCI address.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from multihome.cni import version as ver
from multihome.cni.args import parse_mac
from multihome.cni.errors import CNIError, InvalidConfig, NotAvailable
from multihome.cni.result import Interface, Result
from multihome.cni.skel import Call
from multihome.net import links, netns, sysfs
from multihome.net.netns import Netlink, netlink
from multihome.plugins import conf_keys, ipam_helper, netdev_move

SUPPORTED_VERSIONS = ver.ALL_VERSIONS
PLUGIN = "host-device"


@dataclass(frozen=True)
class HostDeviceConf:
    device: str
    hwaddr: str
    kernelpath: str
    pci: str
    sys_root: Path
    ipam_type: str


def parse(call: Call) -> HostDeviceConf:
    raw = call.conf.raw
    hwaddr = conf_keys.get_str(raw, "hwaddr", PLUGIN)
    device_id = call.conf.runtime_config.get("deviceID") or conf_keys.get_str(
        raw, "deviceID", PLUGIN)
    if not isinstance(device_id, str):
        raise InvalidConfig(f"runtimeConfig.deviceID must be a string, got {device_id!r}")
    conf = HostDeviceConf(
        device=conf_keys.get_ifname(raw, "device", PLUGIN),
        hwaddr=parse_mac(hwaddr, "host-device hwaddr") if hwaddr else "",
        kernelpath=conf_keys.get_path(raw, "kernelpath", PLUGIN),
        pci=device_id or conf_keys.get_str(raw, "pciBusID", PLUGIN),
        sys_root=sysfs.root(conf_keys.get_path(raw, "sysfsRoot", PLUGIN)),
        ipam_type=conf_keys.ipam_type(call))
    if not (conf.device or conf.hwaddr or conf.kernelpath or conf.pci):
        raise InvalidConfig('host-device: specify one of "device", "hwaddr", "kernelpath", '
                            '"pciBusID" or runtimeConfig.deviceID')
    return conf


def _sysfs_names(conf: HostDeviceConf) -> list[str] | None:
    """Netdev names sysfs gives for kernelpath/pciBusID; None when those are not used."""
    if conf.pci:
        return sysfs.netdevs(sysfs.pci_dir(conf.sys_root, conf.pci))
    if conf.kernelpath:
        path = Path(conf.kernelpath)
        if not path.is_dir():
            raise InvalidConfig(f"kernelpath {conf.kernelpath} does not exist")
        return sysfs.netdevs(path)
    return None


def _belongs(conf: HostDeviceConf, names: list[str] | None) -> Callable[[links.Link], bool]:
    def belongs(link: links.Link) -> bool:
        if conf.device:
            return link.alias == conf.device
        if conf.hwaddr:
            return link.mac == conf.hwaddr
        return names is not None and link.name in names
    return belongs


def _find(ipr: Netlink, conf: HostDeviceConf, names: list[str] | None) -> links.Link:
    if conf.device:
        found = links.by_name(ipr, conf.device)
        what = f"device {conf.device!r}"
    elif conf.hwaddr:
        found = next((lk for lk in links.all_links(ipr) if lk.mac == conf.hwaddr), None)
        what = f"a device with hwaddr {conf.hwaddr}"
    else:
        found = links.by_name(ipr, names[0]) if names else None
        what = f"the netdev of {conf.pci or conf.kernelpath}"
    if found is None:
        raise InvalidConfig(f"host-device: {what} not found in the host network namespace")
    return found


def add(call: Call) -> Result:
    conf = parse(call)
    cmd = call.cmd
    names = _sysfs_names(conf)
    if conf.pci and names == []:  # bound to a userspace driver: nothing to move
        return Result(cni_version=call.conf.cni_version,
                      interfaces=[Interface(name=cmd.ifname, pci_id=conf.pci)])
    with netns.opened(cmd.netns) as nsfd, netlink() as ipr, netns.iproute_in(nsfd) as cipr:
        link = _find(ipr, conf, names)
        if links.by_name(cipr, cmd.ifname) is not None:
            raise CNIError(f"container {cmd.container_id} already has an interface "
                           f"named {cmd.ifname}")
        with ipam_helper.rollback() as undo:
            moved = netdev_move.move_in(ipr, cipr, link, nsfd, cmd.ifname)
            undo.append(lambda: netdev_move.move_out(cmd.netns, cmd.ifname))
            result = Result(cni_version=call.conf.cni_version, interfaces=[
                Interface(name=cmd.ifname, mac=moved.mac, sandbox=cmd.netns,
                          pci_id=conf.pci)])
            if conf.ipam_type:
                ipam_helper.apply(ipam_helper.add(call, conf.ipam_type, undo), result,
                                  cipr, nsfd, moved)
            return result


def delete(call: Call) -> None:
    conf = parse(call)
    cmd = call.cmd
    ipam_helper.run_if_set(call, conf.ipam_type, "DEL")
    if cmd.netns and netdev_move.move_out(cmd.netns, cmd.ifname) is not None:
        return
    names = _sysfs_names(conf) if conf.pci or conf.kernelpath else None
    with netlink() as ipr:
        netdev_move.recover_fallen(ipr, _belongs(conf, names))


def check(call: Call) -> None:
    conf = parse(call)
    cmd = call.cmd
    prev = ipam_helper.prev_for_check(call, conf.ipam_type)
    with netns.iproute_in(cmd.netns) as cipr:
        link = links.by_name(cipr, cmd.ifname)
        if link is None:
            raise CNIError(f"container interface {cmd.ifname} not found")
        if conf.device and link.alias != conf.device:
            raise CNIError(f"{cmd.ifname} is not host device {conf.device} "
                           f"(its alias is {link.alias!r})")
        if conf.hwaddr and link.mac != conf.hwaddr:
            raise CNIError(f"{cmd.ifname} MAC {link.mac} is not {conf.hwaddr}")
        ipam_helper.check_container(cipr, link, prev, cmd.container_id)


def status(call: Call) -> None:
    conf = parse(call)
    ipam_helper.run_if_set(call, conf.ipam_type, "STATUS")
    if conf.device:
        with netlink() as ipr:
            if links.by_name(ipr, conf.device) is None:
                raise NotAvailable(f"host device {conf.device} is not in the host namespace "
                                   "(in use by a container, or absent)")


gc = ipam_helper.ipam_only(parse, "GC")
