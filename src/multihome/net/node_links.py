"""Links a node policy creates or inspects: dummy, vxlan, vrf, local veth pairs (vlan and
macvlan links come from net.sublinks, bonds from net.bond), bridge STP, port release, and
the type-specific details `node show` reports.

Kernels without a link type answer EOPNOTSUPP (or ENOTSUP on add); that becomes a
CNIError that names the missing kernel feature.
"""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from multihome.cni.errors import CNIError

# the kernel option each link kind needs, named when the kernel lacks it
_KERNEL_OPTION = {"dummy": "CONFIG_DUMMY", "vxlan": "CONFIG_VXLAN", "vrf": "CONFIG_NET_VRF",
                  "veth": "CONFIG_VETH"}
# the port the kernel gives a vxlan link created without one (Linux's historic default;
# IANA's 4789 must be asked for)
VXLAN_DEFAULT_PORT = 8472


def _add(ipr: IPRoute, what: str, **spec: Any) -> None:
    kind = spec.get("kind", "")
    try:
        ipr.link("add", **spec)
    except NetlinkError as e:
        reason = f"{e.args[1] if len(e.args) > 1 else e}"
        if e.code in (errno.EOPNOTSUPP, errno.ENOTSUP) or "not supported" in str(e).lower():
            raise CNIError(f"cannot create {what}: this kernel lacks {kind} links "
                           f"({_KERNEL_OPTION.get(kind, kind)})", reason) from e
        if e.code == errno.EEXIST:
            raise CNIError(f"cannot create {what}: an interface with that name, or the "
                           "same tunnel, exists already", reason) from e
        raise CNIError(f"cannot create {what}", f"{reason} (errno {e.code})") from e


def create_dummy(ipr: IPRoute, name: str, *, mac: str = "") -> None:
    _add(ipr, f"dummy {name}", ifname=name, kind="dummy", **({"address": mac} if mac else {}))


@dataclass(frozen=True)
class Vxlan:
    """A vxlan link's settings, as nmstate names them (`remote` may be multicast)."""

    vni: int
    base: int = 0  # ifindex of the link it sends through; 0: any
    remote: str = ""
    local: str = ""
    port: int = 0  # 0: the kernel's default

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Vxlan:
        """From `links.Link.data` of a vxlan link."""
        return cls(vni=int(data.get("IFLA_VXLAN_ID") or 0),
                   base=int(data.get("IFLA_VXLAN_LINK") or 0),
                   remote=data.get("IFLA_VXLAN_GROUP") or data.get("IFLA_VXLAN_GROUP6") or "",
                   local=data.get("IFLA_VXLAN_LOCAL") or data.get("IFLA_VXLAN_LOCAL6") or "",
                   port=int(data.get("IFLA_VXLAN_PORT") or 0))


def create_vxlan(ipr: IPRoute, name: str, vx: Vxlan, *, mac: str = "") -> None:
    spec: dict[str, Any] = {"ifname": name, "kind": "vxlan", "vxlan_id": vx.vni,
                            "vxlan_port": vx.port or VXLAN_DEFAULT_PORT}
    if vx.base:
        spec["vxlan_link"] = vx.base
    for key, value in (("group", vx.remote), ("local", vx.local)):
        if value:
            six = "6" if ipaddress.ip_address(value).version == 6 else ""
            spec[f"vxlan_{key}{six}"] = value
    if mac:
        spec["address"] = mac
    _add(ipr, f"vxlan {name} (VNI {vx.vni})", **spec)


def create_vrf(ipr: IPRoute, name: str, table: int, *, mac: str = "") -> None:
    _add(ipr, f"vrf {name} (table {table})", ifname=name, kind="vrf", vrf_table=table,
         **({"address": mac} if mac else {}))


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
    return LinkDetails(stp=bool(data.get_attr("IFLA_BR_STP_STATE")),
                       vlan_filtering=bool(data.get_attr("IFLA_BR_VLAN_FILTERING")),
                       vlan_id=int(data.get_attr("IFLA_VLAN_ID") or 0))


# bridge options outside nmstate's model that a rollback must still bring back (STP and
# VLAN filtering are in the model); names as pyroute2 spells them after `br_`
BRIDGE_OPTIONS = ("forward_delay", "hello_time", "max_age", "ageing_time", "priority",
                  "group_fwd_mask", "mcast_snooping")
# bridge-port options a rollback brings back; names as pyroute2's brport spells them
PORT_OPTIONS = ("priority", "cost", "mode", "guard", "protect", "fast_leave", "learning",
                "unicast_flood", "proxyarp", "mcast_flood", "bcast_flood", "isolated",
                "neigh_suppress")


def bridge_options(ipr: IPRoute, index: int) -> dict[str, int]:
    """The BRIDGE_OPTIONS of a bridge (those the kernel reports)."""
    msgs = ipr.get_links(index)
    info = msgs[0].get_attr("IFLA_LINKINFO") if msgs else None
    data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
    if data is None or isinstance(data, (str, bytes)):
        return {}
    out = {name: data.get_attr(f"IFLA_BR_{name.upper()}") for name in BRIDGE_OPTIONS}
    return {k: int(v) for k, v in out.items() if v is not None}


def set_bridge_options(ipr: IPRoute, index: int, options: dict[str, int]) -> None:
    if not options:
        return
    try:
        ipr.link("set", index=index, kind="bridge",
                 **{f"br_{k}": v for k, v in options.items()})
    except NetlinkError as e:
        raise CNIError(f"cannot set bridge options {options} on link {index}", str(e)) from e


def port_options(ipr: IPRoute, index: int) -> dict[str, int]:
    """The PORT_OPTIONS of a bridge port, and its port number as `no`."""
    for msg in ipr.brport("show", index=index):
        info = msg.get_attr("IFLA_PROTINFO")
        if info is None:
            continue
        attrs = {name[len("IFLA_BRPORT_"):].lower(): value for name, value in info["attrs"]}
        return {k: int(attrs[k]) for k in (*PORT_OPTIONS, "no") if k in attrs}
    return {}


def set_port_options(ipr: IPRoute, index: int, options: dict[str, int]) -> None:
    options = {k: v for k, v in options.items() if k in PORT_OPTIONS}
    if not options:
        return
    try:
        ipr.brport("set", index=index, **options)
    except NetlinkError as e:
        raise CNIError(f"cannot set bridge port options {options} on link {index}",
                       str(e)) from e
