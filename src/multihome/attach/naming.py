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
