"""The VM NIC's tap: opened for qemu and made a port of the in-pod bridge (both the
bridge and the masquerade binding end with it)."""

from __future__ import annotations

import os

from multihome.net import links, netns, tapfd
from multihome.vm.errors import VMError


def open_port(pod_netns: str, tap: str, bridge_index: int, step: str) -> int:
    """The tap's fd for qemu's `-netdev tap,fd=`, the tap up as a port of the bridge;
    on failure the fd is closed again (the tap, which only lives while it is open, goes)."""
    fd = tapfd.open_tap(pod_netns, tap)
    try:
        with netns.iproute_in(pod_netns) as ipr:
            link = links.by_name(ipr, tap)
            if link is None:
                raise VMError(step, f"tap {tap} vanished right after creation")
            links.set_master(ipr, link.index, bridge_index)
            links.set_up(ipr, link.index)
    except BaseException:
        os.close(fd)
        raise
    return fd
