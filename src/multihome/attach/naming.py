"""Interface names inside the pod: `eth0` for the default network, then `net1`, `net2`…

Multus numbers a secondary attachment by its position in the list, whether or not an
earlier one asked for its own name; so `a@net1, b` is net1 + net2 while `b, a@net1`
collides on net1 and the pod fails before anything is attached.
"""

from __future__ import annotations

from collections.abc import Sequence

from multihome.cni.errors import CNIError, InvalidConfig
from multihome.cni.types import validate_ifname

DEFAULT_IFNAME = "eth0"


class DuplicateInterface(InvalidConfig):
    """Two attachments of one pod would get the same interface name."""


def secondary_name(position: int) -> str:
    """The generated name of the `position`-th (1-based) secondary attachment."""
    return f"net{position}"


def assign_names(requested: Sequence[str | None], pod: str,
                 default_ifname: str = DEFAULT_IFNAME) -> list[str]:
    """Names for secondary attachments, in order; `pod` is "ns/name" for messages."""
    used = {default_ifname}
    names: list[str] = []
    for position, want in enumerate(requested, start=1):
        name = want or secondary_name(position)
        try:
            validate_ifname(name)
        except CNIError as e:
            raise InvalidConfig(f"pod {pod}: {e.msg}") from e
        if name in used:
            raise DuplicateInterface(f"interface name {name} already in use in pod {pod}")
        used.add(name)
        names.append(name)
    return names


def assign_added_names(requested: Sequence[str | None], positions: Sequence[int],
                       in_use: set[str], pod: str) -> list[str]:
    """Names for elements hot-plugged into a running pod.

    `positions` are the 1-based indexes Multus would number the elements by (their place
    among the pod's secondary attachments); `in_use` holds every name the pod has now,
    those about to be unplugged included. An element without a name gets `net<position>`
    unless that is in use or requested by another element, else the next free `netN`: a
    name never passes to a different element while the old interface may still exist, and
    the same edit of the same pod always gives the same names.
    """
    wanted = {w for w in requested if w}
    taken = set(in_use) | wanted
    names: list[str] = []
    for want, position in zip(requested, positions, strict=True):
        if want:
            try:
                validate_ifname(want)
            except CNIError as e:
                raise InvalidConfig(f"pod {pod}: {e.msg}") from e
            names.append(want)
            continue
        n = position
        while secondary_name(n) in taken:
            n += 1  # bounded: `taken` is finite
        name = secondary_name(n)
        taken.add(name)
        names.append(name)
    return names
