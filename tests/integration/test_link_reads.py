"""Links read straight off the socket are the links pyroute2 decodes, field for field."""

from __future__ import annotations

from typing import Any

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from multihome.net import link_reads, links
from multihome.net import netns as mh_netns
from support.netns import Netns

pytestmark = pytest.mark.netns


def _make_links(ipr: Any) -> None:
    ipr.link("add", ifname="mhr-br", kind="bridge")
    ipr.link("add", ifname="mhr-v0", kind="veth", peer={"ifname": "mhr-v1"})
    base = ipr.link_lookup(ifname="mhr-v0")[0]
    lower = ipr.link_lookup(ifname="mhr-v1")[0]
    ipr.link("add", ifname="mhr-mv", kind="macvlan", link=lower,
             macvlan_mode="private")
    ipr.link("add", ifname="mhr-vx", kind="vxlan", vxlan_id=42,
             vxlan_port=4789)
    ipr.link("set", index=base, master=ipr.link_lookup(ifname="mhr-br")[0],
             state="up", ifalias="an alias", mtu=1400, txqlen=77)


def test_every_field_matches_pyroute2s_decoding(netns: Netns) -> None:
    with mh_netns.iproute_in(netns.path) as ipr:
        _make_links(ipr)
        for msg in ipr.get_links():
            want = links._to_link(msg)
            got = links.by_name(ipr, want.name)
            assert got == want, want.name
            assert links.by_index(ipr, want.index) == want
            assert got is not None and got.data == want.data, want.name
        mv = links.by_name(ipr, "mhr-mv")
        assert mv is not None and mv.kind == "macvlan" and mv.data["IFLA_MACVLAN_MODE"] == "private"
        port = links.by_name(ipr, "mhr-v0")
        assert port is not None and (port.alias, port.mtu, port.txqlen) == ("an alias", 1400, 77)


def test_a_missing_link_is_none_and_other_refusals_are_errors(netns: Netns) -> None:
    with mh_netns.iproute_in(netns.path) as ipr:
        assert links.by_name(ipr, "mhr-none") is None
        assert links.by_index(ipr, 2**31 - 1) is None
        assert links.by_name(ipr, "x" * 16) is None  # no link can have that name
        assert links.by_name(ipr, "") is None
        with pytest.raises(NetlinkError):
            link_reads.get_link(ipr, name="x" * 40)  # the kernel refuses the request


def test_pyroute2_keeps_working_on_a_socket_read_this_way(netns: Netns) -> None:
    # the first request on a fresh IPRoute may be ours: the kernel binds the socket then,
    # and pyroute2's own requests afterwards must still get their answers
    with mh_netns.iproute_in(netns.path) as ipr:
        assert links.by_name(ipr, "lo") is not None
        ipr.link("add", ifname="mhr-d", kind="veth", peer={"ifname": "mhr-dp"})
        assert [m.get_attr("IFLA_IFNAME") for m in ipr.link("get", ifname="mhr-d")] == ["mhr-d"]
        assert links.by_name(ipr, "mhr-d") is not None
