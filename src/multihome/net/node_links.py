"""Links a node policy creates or inspects: dummy, local veth pairs (vlan and macvlan
links come from net.sublinks),
bridge STP and port release, and the type-specific details `node show` reports.

Kernels without a link type answer EOPNOTSUPP (or ENOTSUP on add); that becomes a
CNIError that names the missing kernel feature.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from multihome.cni.errors import CNIError

MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}


def _add(ipr: IPRoute, what: str, **spec: Any) -> None:
    try:
        ipr.link("add", **spec)
    except NetlinkError as e:
        if e.code in (errno.EOPNOTSUPP, errno.ENOTSUP) or "not supported" in str(e).lower():
            raise CNIError(f"cannot create {what}: this kernel lacks "
                           f"{spec.get('kind')} links", str(e)) from e
        raise CNIError(f"cannot create {what}", f"{e.args[1] if len(e.args) > 1 else e}") from e


def create_dummy(ipr: IPRoute, name: str) -> None:
    _add(ipr, f"dummy {name}", ifname=name, kind="dummy")


def create_veth_pair(ipr: IPRoute, name: str, peer: str) -> None:
    """Both ends in the same namespace (a node-local pair, as nmstate's veth type)."""
    _add(ipr, f"veth {name}", ifname=name, kind="veth", peer={"ifname": peer})


def release_port(ipr: IPRoute, index: int) -> None:
    """Take a link off its bridge (nomaster)."""
    try:
        ipr.link("set", index=index, master=0)
    except NetlinkError as e:
        raise CNIError(f"cannot release link {index} from its bridge", str(e)) from e


def set_stp(ipr: IPRoute, index: int, on: bool) -> None:
    try:
        ipr.link("set", index=index, kind="bridge", br_stp_state=1 if on else 0)
    except NetlinkError as e:
        raise CNIError(f"cannot {'enable' if on else 'disable'} STP on bridge {index}",
                       str(e)) from e


@dataclass(frozen=True)
class LinkDetails:
    """What IFLA_INFO_DATA says about a link, for the types a policy can hold."""

    stp: bool = False
    vlan_filtering: bool = False
    vlan_id: int = 0
    macvlan_mode: str = ""


def details(ipr: IPRoute, index: int) -> LinkDetails:
    """Empty for a link that is gone: it may vanish between listing and this read."""
    try:
        msgs = ipr.get_links(index)
    except NetlinkError as e:
        if e.code != errno.ENODEV:
            raise
        return LinkDetails()
    if not msgs:
        return LinkDetails()
    info = msgs[0].get_attr("IFLA_LINKINFO")
    data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
    if data is None or isinstance(data, (str, bytes)):
        return LinkDetails()
    mode = data.get_attr("IFLA_MACVLAN_MODE")
    mode_name = next((k for k, v in MACVLAN_MODES.items() if v == mode), "")
    return LinkDetails(stp=bool(data.get_attr("IFLA_BR_STP_STATE")),
                       vlan_filtering=bool(data.get_attr("IFLA_BR_VLAN_FILTERING")),
                       vlan_id=int(data.get_attr("IFLA_VLAN_ID") or 0),
                       macvlan_mode=mode_name)
