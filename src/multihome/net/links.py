"""Links: bridges, veth pairs, bridge-port flags, lookups. All take an open IPRoute.

Netlink errors become CNIErrors with a sentence naming the link; EEXIST on bridge
creation is resolved by re-reading (parallel ADDs creating the same bridge).
"""

from __future__ import annotations

import errno
import secrets
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from multihome.cni.errors import CNIError, InvalidConfig
from multihome.net import link_batch, link_reads, link_writes
from multihome.net.link_writes import IFF_UP

IFF_PROMISC = 0x100
IFF_ALLMULTI = 0x200


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str
    mac: str
    mtu: int
    flags: int
    master: int  # 0 when not a port
    peer_index: int  # IFLA_LINK: the veth peer's ifindex (in its own netns)
    operstate: str
    # IFLA_LINK_NETNSID: set when the peer/base link is in another namespace, whose
    # `peer_index` then means nothing in this one (the kernel omits it for a local peer)
    link_netnsid: int | None = None
    alias: str = ""  # IFLA_IFALIAS: host-device keeps the original name here
    txqlen: int = 0
    num_tx_queues: int = 0
    # IFLA_LINKINFO as pyroute2 decoded it, or the message as read by link_reads;
    # `data` decodes its IFLA_INFO_DATA when first asked for
    info: Any = field(default=None, compare=False, repr=False)
    raw: link_reads.RawLink | None = field(default=None, compare=False, repr=False)

    @cached_property
    def data(self) -> dict[str, Any]:
        """IFLA_INFO_DATA attributes (macvlan mode, vlan id, tun owner…), names as
        pyroute2 gives them; read only by the few callers that need them."""
        info = self.raw.decoded().get_attr("IFLA_LINKINFO") if self.raw is not None \
            else self.info
        nla = info.get_attr("IFLA_INFO_DATA") if info is not None else None
        if nla is None or isinstance(nla, str | bytes):
            return {}
        return {k: v for k, v in nla["attrs"] if k != "UNKNOWN"}

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def promisc(self) -> bool:
        return bool(self.flags & IFF_PROMISC)

    @property
    def allmulti(self) -> bool:
        return bool(self.flags & IFF_ALLMULTI)


def _first_attrs(msg: Any) -> dict[str, Any]:
    """A message's attributes by name, the first of each (as get_attr finds it): one
    pass, where a get_attr per field scanned the whole list each time (a bridge carries
    ~60 attributes; this halved the cost of reading one)."""
    attrs: dict[str, Any] = {}
    for name, value in msg["attrs"]:
        attrs.setdefault(name, value)
    return attrs


def _to_link(msg: Any) -> Link:
    attrs = _first_attrs(msg)
    info = attrs.get("IFLA_LINKINFO")
    kind = (info.get_attr("IFLA_INFO_KIND") if info is not None else None) or ""
    return Link(
        index=msg["index"],
        name=attrs.get("IFLA_IFNAME") or "",
        kind=kind,
        mac=(attrs.get("IFLA_ADDRESS") or "").lower(),
        mtu=attrs.get("IFLA_MTU") or 0,
        flags=msg["flags"],
        master=attrs.get("IFLA_MASTER") or 0,
        peer_index=attrs.get("IFLA_LINK") or 0,
        operstate=attrs.get("IFLA_OPERSTATE") or "",
        link_netnsid=attrs.get("IFLA_LINK_NETNSID"),
        alias=attrs.get("IFLA_IFALIAS") or "",
        txqlen=attrs.get("IFLA_TXQLEN") or 0,
        num_tx_queues=attrs.get("IFLA_NUM_TX_QUEUES") or 0,
        info=info,
    )


def local_peer(link: Link, by_index: dict[int, Link]) -> Link | None:
    """The link IFLA_LINK names (veth peer, vlan/macvlan base) when it is in the same
    namespace as `link`; None when it is elsewhere or gone."""
    if link.link_netnsid is not None or not link.peer_index:
        return None
    return by_index.get(link.peer_index)


def _fail(what: str, e: NetlinkError) -> CNIError:
    return CNIError(what, f"{e.args[1] if len(e.args) > 1 else e} (errno {e.code})")


def _from_raw(raw: link_reads.RawLink) -> Link:
    return Link(
        index=raw.index,
        name=raw.text(link_reads.IFLA_IFNAME),
        kind=raw.kind(),
        mac=raw.mac(),
        mtu=raw.u32(link_reads.IFLA_MTU) or 0,
        flags=raw.flags,
        master=raw.u32(link_reads.IFLA_MASTER) or 0,
        peer_index=raw.u32(link_reads.IFLA_LINK) or 0,
        operstate=raw.operstate(),
        link_netnsid=raw.s32(link_reads.IFLA_LINK_NETNSID),
        alias=raw.text(link_reads.IFLA_IFALIAS),
        txqlen=raw.u32(link_reads.IFLA_TXQLEN) or 0,
        num_tx_queues=raw.u32(link_reads.IFLA_NUM_TX_QUEUES) or 0,
        raw=raw,
    )


def by_index(ipr: IPRoute, index: int) -> Link | None:
    if index <= 0:
        return None
    try:
        raw = link_reads.get_link(ipr, index=index)
    except NetlinkError as e:
        raise _fail(f"cannot read link {index}", e) from e
    return _from_raw(raw) if raw is not None else None


def by_name(ipr: IPRoute, name: str) -> Link | None:
    if not name or len(name.encode()) > 15:
        return None  # no link has such a name (the kernel would say EINVAL)
    try:
        raw = link_reads.get_link(ipr, name=name)
    except NetlinkError as e:
        raise _fail(f"cannot read link {name}", e) from e
    return _from_raw(raw) if raw is not None else None


def all_links(ipr: IPRoute) -> list[Link]:
    return [_to_link(m) for m in ipr.get_links()]


def ports_of(ipr: IPRoute, bridge_index: int) -> list[Link]:
    return [link for link in all_links(ipr) if link.master == bridge_index]


def ensure_bridge(ipr: IPRoute, name: str, *, mtu: int = 0, promisc: bool = False,
                  vlan_filtering: bool = False, mac: str = "") -> Link:
    """Create bridge `name` or accept an existing one; always returns it up.

    Parallel callers may all try to create it: EEXIST means someone else won the
    race (or it was there already), and what exists must really be a bridge.
    """
    link = by_name(ipr, name)
    if link is None:
        _create_bridge(ipr, name, mtu=mtu, promisc=promisc, vlan_filtering=vlan_filtering,
                       mac=mac)
        link = by_name(ipr, name)
        if link is None:  # deleted between our add and read: rare; one retry is enough
            return ensure_bridge(ipr, name, mtu=mtu, promisc=promisc,
                                 vlan_filtering=vlan_filtering, mac=mac)
    if link.kind != "bridge":
        raise InvalidConfig(f"{name!r} already exists but is not a bridge (it is a "
                            f"{link.kind or 'plain'} link); choose another bridge name")
    changed = False
    if vlan_filtering and not link.data.get("IFLA_BR_VLAN_FILTERING"):
        set_vlan_filtering(ipr, link, True)
        changed = True
    if promisc and not link.promisc:
        set_promisc(ipr, link.index, True)
        changed = True
    if not link.up:
        set_up(ipr, link.index)
        changed = True
    # An existing bridge that needs nothing costs one netlink round trip (a pod's ADD).
    return (by_index(ipr, link.index) or link) if changed else link


def _create_bridge(ipr: IPRoute, name: str, *, mtu: int, promisc: bool,
                   vlan_filtering: bool, mac: str) -> None:
    """RTM_NEWLINK for a bridge; EEXIST means a parallel caller created it first."""
    spec: dict[str, Any] = {"ifname": name, "kind": "bridge"}
    if mtu:
        spec["mtu"] = mtu
    if mac:
        spec["address"] = mac
    if vlan_filtering:
        spec["br_vlan_filtering"] = 1
    try:
        ipr.link("add", **spec)
    except NetlinkError as e:
        if e.code == errno.EOPNOTSUPP and vlan_filtering:
            raise CNIError(
                f"cannot create bridge {name} with VLAN filtering: this kernel lacks bridge "
                "VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING); use a kernel with it or drop "
                "the vlan/vlanTrunk keys") from e
        if e.code != errno.EEXIST:
            raise _fail(f"cannot create bridge {name}", e) from e


def set_vlan_filtering(ipr: IPRoute, link: Link, on: bool) -> None:
    try:
        ipr.link("set", index=link.index, kind="bridge", br_vlan_filtering=1 if on else 0)
    except NetlinkError as e:
        if e.code == errno.EOPNOTSUPP:
            raise CNIError(
                f"cannot turn on VLAN filtering on bridge {link.name}: this kernel lacks bridge "
                "VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)") from e
        raise _fail(f"cannot set VLAN filtering on bridge {link.name}", e) from e


def random_veth_name() -> str:
    """Host-side name in the reference plugin's style: `veth` + 8 hex digits."""
    return "veth" + secrets.token_hex(4)


def create_veth(ipr: IPRoute, container_ifname: str, netns_fd: int, *, mtu: int = 0,
                mac: str = "", host_name: str = "", container_id: str = "") -> tuple[Link, str]:
    """Create a veth pair whose peer is born inside the container netns as `container_ifname`.

    Returns the host end (in `ipr`'s namespace) and its name. A host-name clash (EEXIST on
    a random name) is retried with a new one; a clash inside the container is reported
    by the caller, who checks first.
    """
    for _ in range(8):
        name = host_name or random_veth_name()
        try:
            link_writes.create_veth(ipr, name, container_ifname, netns_fd, mtu=mtu,
                                    peer_mac=mac)
        except ValueError as e:
            raise InvalidConfig(f"cannot use MAC address {mac} for {container_ifname}",
                                str(e)) from e
        except NetlinkError as e:
            if e.code == errno.EEXIST and not host_name:
                # Either our random host name or the container name exists.
                if by_name(ipr, name) is not None:
                    continue
                who = f"container {container_id}" if container_id else "the container"
                raise CNIError(f"{who} already has an interface named {container_ifname}",
                               str(e)) from e
            if e.code == errno.EADDRNOTAVAIL and mac:
                raise InvalidConfig(f"cannot use MAC address {mac} for {container_ifname}",
                                    str(e)) from e
            raise _fail(f"cannot create veth pair for {container_ifname}", e) from e
        link = by_name(ipr, name)
        if link is None:
            raise CNIError(f"veth {name} vanished right after creation")
        return link, name
    raise CNIError("cannot find a free host-side veth name after 8 tries")


def _set(ipr: IPRoute, index: int, what: str, **attrs: Any) -> None:
    """One RTM_NEWLINK change; `what` completes "cannot ..." in the error."""
    try:
        ipr.link("set", index=index, **attrs)
    except NetlinkError as e:
        raise _fail(f"cannot {what}", e) from e


def _set_fast(ipr: IPRoute, index: int, what: str, *, up: bool | None = None,
              master: int | None = None) -> None:
    """The changes every attachment makes, without pyroute2's per-call cost."""
    try:
        link_writes.set_link(ipr, index, up=up, master=master)
    except NetlinkError as e:
        raise _fail(f"cannot {what}", e) from e


def set_up(ipr: IPRoute, index: int) -> None:
    _set_fast(ipr, index, f"set link {index} up", up=True)


def set_down(ipr: IPRoute, index: int) -> None:
    _set_fast(ipr, index, f"set link {index} down", up=False)


def set_master(ipr: IPRoute, index: int, master_index: int, *, up: bool = False) -> None:
    """Enslave to a bridge; `up` sets the link up in the same request."""
    _set_fast(ipr, index, f"attach link {index} to bridge {master_index}",
              up=True if up else None, master=master_index)


def set_mtu(ipr: IPRoute, index: int, mtu: int) -> None:
    _set(ipr, index, f"set MTU {mtu} on link {index}", mtu=mtu)


def set_mac(ipr: IPRoute, index: int, mac: str) -> None:
    _set(ipr, index, f"set MAC {mac} on link {index}", address=mac)


def set_promisc(ipr: IPRoute, index: int, on: bool) -> None:
    _set(ipr, index, f"set promiscuous mode on link {index}",
         flags=IFF_PROMISC if on else 0, change=IFF_PROMISC)


def set_allmulti(ipr: IPRoute, index: int, on: bool) -> None:
    _set(ipr, index, f"set all-multicast mode on link {index}",
         flags=IFF_ALLMULTI if on else 0, change=IFF_ALLMULTI)


def set_txqlen(ipr: IPRoute, index: int, txqlen: int) -> None:
    _set(ipr, index, f"set transmit queue length {txqlen} on link {index}", txqlen=txqlen)


def set_alias(ipr: IPRoute, index: int, alias: str) -> None:
    """IFLA_IFALIAS; an empty alias clears it."""
    _set(ipr, index, f"set alias {alias!r} on link {index}", ifalias=alias)


def rename(ipr: IPRoute, index: int, name: str) -> None:
    """Rename a link (it must be down, as the kernel requires)."""
    try:
        ipr.link("set", index=index, ifname=name)
    except NetlinkError as e:
        if e.code == errno.EEXIST:
            raise CNIError(f"cannot rename link {index} to {name}: that name is taken") from e
        raise _fail(f"cannot rename link {index} to {name}", e) from e


def move_to_netns(ipr: IPRoute, index: int, netns_fd: int, name: str = "") -> None:
    """Move a link into another namespace, renaming it on the way when `name` is given.

    The kernel applies IFLA_IFNAME together with the move, so a name that exists only in
    the source namespace never clashes.
    """
    spec: dict[str, Any] = {"index": index, "net_ns_fd": netns_fd}
    if name:
        spec["ifname"] = name
    try:
        ipr.link("set", **spec)
    except NetlinkError as e:
        if e.code == errno.EEXIST:
            raise CNIError(f"cannot move link {index}: the target namespace already has an "
                           f"interface named {name or 'like it'}") from e
        raise _fail(f"cannot move link {index} to another network namespace", e) from e


def set_port_flags(ipr: IPRoute, index: int, *, hairpin: bool | None = None,
                   isolated: bool | None = None) -> None:
    """Bridge-port flags: hairpin is IFLA_BRPORT_MODE, isolation IFLA_BRPORT_ISOLATED."""
    flags: dict[str, int] = {}
    if hairpin is not None:
        flags["mode"] = int(hairpin)
    if isolated is not None:
        flags["isolated"] = int(isolated)
    if not flags:
        return
    try:
        ipr.brport("set", index=index, **flags)
    except NetlinkError as e:
        raise _fail(f"cannot set bridge port flags {flags} on link {index}", e) from e


def port_flags(ipr: IPRoute, index: int) -> dict[str, int]:
    """Current bridge-port attributes of a port, keyed like `mode`, `isolated`."""
    for msg in ipr.brport("show", index=index):
        info = msg.get_attr("IFLA_PROTINFO")
        if info is None:
            continue
        return {name[len("IFLA_BRPORT_"):].lower(): value for name, value in info["attrs"]}
    return {}


def delete(ipr: IPRoute, index: int) -> bool:
    """Delete a link; False if it was already gone."""
    return _delete(ipr, str(index), index=index)


def delete_by_name(ipr: IPRoute, name: str) -> bool:
    """Delete a link by name (the kernel resolves it: one round trip); False if gone."""
    return _delete(ipr, name, ifname=name)


def _delete(ipr: IPRoute, what: str, **key: Any) -> bool:
    batch = link_batch.current()
    try:
        if batch is not None:  # a pod's delegates side by side: one request for all
            batch.delete(ipr, key)
        else:
            ipr.link("del", **key)
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return False
        raise _fail(f"cannot delete link {what}", e) from e
    return True
