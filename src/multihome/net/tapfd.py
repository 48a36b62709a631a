"""File descriptors of tap and macvtap devices, for handing a VM NIC to qemu.

A tap opened through /dev/net/tun belongs to the namespace of the thread that opens
the file, so the open happens inside the pod's namespace; the device lives as long as
some process holds the fd (not persistent), so it disappears with qemu on its own.
A macvtap's character device is `/dev/tap<ifindex>` on devtmpfs, which every
namespace shares: the name is checked with TUNGETIFF after opening, so a device of
another namespace with the same ifindex is never taken by mistake.
"""

from __future__ import annotations

import fcntl
import os
import struct

from multihome.cni.errors import CNIError
from multihome.net import links, netns

TUNSETIFF = 0x400454CA
TUNGETIFF = 0x800454D2
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
_IFREQ_SIZE = 40


def _ifreq(name: str, flags: int) -> bytes:
    return struct.pack("16sH", name.encode(), flags).ljust(_IFREQ_SIZE, b"\0")


def _ifname_of(fd: int) -> str:
    raw = fcntl.ioctl(fd, TUNGETIFF, bytes(_IFREQ_SIZE))
    return raw[:16].split(b"\0", 1)[0].decode()


def open_tap(netns_path: str, name: str) -> int:
    """Create tap `name` inside the namespace and return its fd (qemu's `fd=` netdev)."""
    with netns.entered(netns_path):
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise CNIError("cannot open /dev/net/tun (is the tun module available?)",
                           str(e)) from e
    try:
        fcntl.ioctl(fd, TUNSETIFF, _ifreq(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    except OSError as e:
        os.close(fd)
        raise CNIError(f"cannot create tap {name} in {netns_path}", str(e)) from e
    return fd


def open_macvtap(netns_path: str, ifname: str) -> int:
    """The character device of macvtap `ifname` in the namespace, opened read-write."""
    with netns.iproute_in(netns_path) as ipr:
        link = links.by_name(ipr, ifname)
    if link is None or link.kind != "macvtap":
        raise CNIError(f"{ifname} in {netns_path} is not a macvtap device")
    path = f"/dev/tap{link.index}"
    with netns.entered(netns_path):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise CNIError(f"cannot open {path}, the character device of macvtap {ifname}",
                           str(e)) from e
    try:
        actual = _ifname_of(fd)
    except OSError as e:
        os.close(fd)
        raise CNIError(f"{path} is not a macvtap device", str(e)) from e
    if actual != ifname:
        os.close(fd)
        raise CNIError(f"{path} belongs to {actual} in another namespace, not {ifname}; "
                       "delete the other macvtap or recreate this one")
    return fd
