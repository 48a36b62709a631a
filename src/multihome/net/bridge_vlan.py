"""Bridge VLAN filtering on ports: access (pvid untagged) and trunk ids.

Needs CONFIG_BRIDGE_VLAN_FILTERING; without it the kernel answers EOPNOTSUPP, which
becomes a CNIError saying so.
"""

from __future__ import annotations

import errno
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from multihome.cni.errors import CNIError

BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4


def _no_support(what: str, e: NetlinkError) -> CNIError:
    if e.code == errno.EOPNOTSUPP:
        return CNIError(f"cannot {what}: this kernel lacks bridge VLAN filtering "
                        "(CONFIG_BRIDGE_VLAN_FILTERING)", str(e))
    return CNIError(f"cannot {what}", f"{e.args[1] if len(e.args) > 1 else e}")


def add(ipr: IPRoute, index: int, vid: int, *, pvid: bool = False, untagged: bool = False) -> None:
    flags = (BRIDGE_VLAN_INFO_PVID if pvid else 0) | (BRIDGE_VLAN_INFO_UNTAGGED if untagged else 0)
    try:
        ipr.vlan_filter("add", index=index, vlan_info={"vid": vid, "flags": flags})
    except NetlinkError as e:
        raise _no_support(f"add VLAN {vid} to port {index}", e) from e


def delete(ipr: IPRoute, index: int, vid: int) -> None:
    try:
        ipr.vlan_filter("del", index=index, vlan_info={"vid": vid})
    except NetlinkError as e:
        if e.code == errno.ENOENT:
            return
        raise _no_support(f"remove VLAN {vid} from port {index}", e) from e


def port_vlans(ipr: IPRoute, index: int) -> list[tuple[int, int]]:
    """(vid, flags) pairs configured on a port."""
    out: list[tuple[int, int]] = []
    try:
        msgs = ipr.get_vlans(index=index)
    except NetlinkError as e:
        raise _no_support(f"read VLANs of port {index}", e) from e
    for msg in msgs:
        if msg["index"] != index:
            continue
        spec: Any = msg.get_attr("IFLA_AF_SPEC")
        if spec is None:
            continue
        for name, value in spec["attrs"]:
            if name == "IFLA_BRIDGE_VLAN_INFO":
                out.append((int(value["vid"]), int(value["flags"])))
    return out


def set_access(ipr: IPRoute, index: int, vid: int) -> None:
    """Untagged port in `vid` (the reference's `vlan`)."""
    add(ipr, index, vid, pvid=True, untagged=True)


def set_trunk(ipr: IPRoute, index: int, vids: list[int]) -> None:
    """Tagged port for each id (the reference's `vlanTrunk`)."""
    for vid in vids:
        add(ipr, index, vid)


def remove_all(ipr: IPRoute, index: int) -> None:
    """Drop every VLAN of a port (VLAN 1 included, unless preserveDefaultVlan)."""
    for vid, _flags in port_vlans(ipr, index):
        delete(ipr, index, vid)


def supported(ipr: IPRoute, probe_name: str) -> bool:
    """Try to create a throwaway VLAN-filtering bridge `probe_name`; delete it again."""
    try:
        ipr.link("add", ifname=probe_name, kind="bridge", br_vlan_filtering=1)
    except NetlinkError:
        return False
    idx = ipr.link_lookup(ifname=probe_name)
    if idx:
        ipr.link("del", index=idx[0])
    return True
