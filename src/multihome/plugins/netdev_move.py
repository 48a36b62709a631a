"""Lending a host network device to a container and getting it back (host-device, sriov).

The device's host name is kept in its ifalias while it lives in the container under
CNI_IFNAME. When the container namespace dies first, the kernel returns a physical device
to the host namespace under its container name: the alias is then how DEL finds it and
gives it its name back (the reference plugin strands it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from multihome.cni.errors import CNIError
from multihome.net import links, netns
from multihome.net.netns import Netlink, netlink


def move_in(ipr: Netlink, cipr: Netlink, link: links.Link, nsfd: int,
            ifname: str) -> links.Link:
    """Move host `link` into the container (`nsfd`, which `cipr` sees) as `ifname`, up;
    return it as seen in there."""
    links.set_down(ipr, link.index)
    links.set_alias(ipr, link.index, link.name)
    try:
        links.move_to_netns(ipr, link.index, nsfd, ifname)
    except CNIError:
        links.set_alias(ipr, link.index, link.alias)
        raise
    moved = links.by_name(cipr, ifname)
    if moved is None:
        raise CNIError(f"{link.name} vanished while moving into the container as {ifname}")
    links.set_up(cipr, moved.index)
    return links.by_index(cipr, moved.index) or moved


def move_out(netns_path: str, ifname: str) -> str | None:
    """Move container `ifname` back to this namespace under its saved name.

    Returns that name; None when the namespace or the interface is gone.
    """
    with contextlib.ExitStack() as opened:
        try:
            nsfd = opened.enter_context(netns.opened(netns_path))
        except netns.NetnsGone:
            return None
        host_fd = opened.enter_context(netns.opened(netns.THIS_NETNS))
        with netns.iproute_in(nsfd) as cipr:
            link = links.by_name(cipr, ifname)
            if link is None:
                return None
            name = link.alias or ifname
            links.set_down(cipr, link.index)
            links.move_to_netns(cipr, link.index, host_fd, name)
    with netlink() as ipr:
        back = links.by_name(ipr, name)
        if back is not None:
            links.set_alias(ipr, back.index, "")
    return name


def recover_fallen(ipr: Netlink, belongs: Callable[[links.Link], bool]) -> str | None:
    """A device that fell back to this namespace still named as in the container: rename
    it to the name in its alias. Returns the restored name, None when there is none."""
    for link in links.all_links(ipr):
        if not link.alias or link.alias == link.name or not belongs(link):
            continue
        links.set_down(ipr, link.index)
        links.rename(ipr, link.index, link.alias)
        links.set_alias(ipr, link.index, "")
        return link.alias
    return None
