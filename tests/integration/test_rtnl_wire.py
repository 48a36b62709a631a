"""The hot-path netlink requests (net/rtnl_wire, link_writes, addr) do what pyroute2's
calls did, on the handles netns.netlink() hands out."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from pyroute2 import IPRoute
from pyroute2.netlink.rtnl import RTMGRP_LINK

from multihome.cni.errors import CNIError, InvalidConfig
from multihome.net import addr, link_reads, links
from multihome.net import netns as mh_netns
from support.netns import Netns

pytestmark = pytest.mark.netns

class _Subscribed:
    """A bare rtnetlink socket in the caller's namespace that gets link notifications."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.sock.bind((0, RTMGRP_LINK))

    def fileno(self) -> int:
        return self.sock.fileno()


def _groups(handle: Any, where: Netns | None = None) -> int:
    """The multicast groups of the handle's socket, as its namespace's
    /proc/net/netlink shows them (`where`: the namespace, else the thread's own)."""
    inode = os.fstat(handle.fileno()).st_ino
    with (mh_netns.entered(where.path) if where else contextlib.nullcontext(),
          open("/proc/thread-self/net/netlink") as table):
        rows = table.read().splitlines()
    for row in rows:
        fields = row.split()
        if fields[-1] == str(inode):
            return int(fields[3], 16)
    raise AssertionError("socket not in /proc/net/netlink")


def test_handles_listen_to_no_notification_group(netns: Netns) -> None:
    # a subscribed socket queues every link/address/route change of the namespace,
    # which nobody reads, before the answers to our requests
    with mh_netns.entered(netns.path):
        control = _Subscribed()
    with control.sock:
        assert _groups(control, netns) == RTMGRP_LINK  # the check sees a subscription
    with mh_netns.iproute_in(netns.path) as ipr:
        assert _groups(ipr, netns) == 0
        ipr.get_links()  # builds the IPRoute behind the handle
        assert _groups(ipr._full(), netns) == 0
    kept: list[int] = []

    def worker() -> None:
        mh_netns.keep_netlink()
        handle = mh_netns.netlink()
        handle.get_links()  # a netlink socket is in the table once bound
        kept.append(_groups(handle))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert kept == [0]


def test_a_veth_is_born_with_its_peer_in_the_container(netns_factory: Callable[..., Netns]
                                                       ) -> None:
    host, pod = netns_factory("mhwh"), netns_factory("mhwp")
    with mh_netns.iproute_in(host.path) as ipr, mh_netns.opened(pod.path) as pod_fd:
        link, name = links.create_veth(ipr, "eth7", pod_fd, mtu=1400, mac="02:aa:bb:cc:dd:01",
                                       host_name="mhw-host")
        assert (name, link.name, link.kind, link.mtu) == ("mhw-host", "mhw-host", "veth", 1400)
        with mh_netns.iproute_in(pod.path) as cipr:
            peer = links.by_name(cipr, "eth7")
        assert peer is not None
        assert (peer.kind, peer.mtu, peer.mac) == ("veth", 1400, "02:aa:bb:cc:dd:01")
        with pytest.raises(CNIError, match="container c1 already has an interface named eth7"):
            links.create_veth(ipr, "eth7", pod_fd, container_id="c1")
        with pytest.raises(InvalidConfig, match="cannot use MAC address 02:zz"):
            links.create_veth(ipr, "eth8", pod_fd, mac="02:zz:00:00:00:01")
        with pytest.raises(CNIError, match="cannot create veth pair for eth8"):
            links.create_veth(ipr, "eth8", pod_fd, host_name="mhw-host")


def test_links_go_up_down_and_into_a_bridge(netns: Netns) -> None:
    with mh_netns.iproute_in(netns.path) as ipr:
        ipr.link("add", ifname="mhw-br", kind="bridge")
        ipr.link("add", ifname="mhw-a", kind="veth", peer={"ifname": "mhw-b"})
        br, port = links.by_name(ipr, "mhw-br"), links.by_name(ipr, "mhw-a")
        assert br is not None and port is not None
        links.set_master(ipr, port.index, br.index, up=True)
        now = links.by_index(ipr, port.index)
        assert now is not None and now.master == br.index and now.up
        links.set_down(ipr, port.index)
        now = links.by_index(ipr, port.index)
        assert now is not None and not now.up and now.master == br.index
        links.set_up(ipr, br.index)
        now = links.by_index(ipr, br.index)
        assert now is not None and now.up
        with pytest.raises(CNIError, match="cannot set link 999999 up"):
            links.set_up(ipr, 999999)


def test_addresses_are_added_and_listed_as_the_kernel_holds_them(netns: Netns) -> None:
    with mh_netns.iproute_in(netns.path) as ipr:
        ipr.link("add", ifname="mhw-a", kind="veth", peer={"ifname": "mhw-b"})
        a, b = links.by_name(ipr, "mhw-a"), links.by_name(ipr, "mhw-b")
        assert a is not None and b is not None
        v4 = ipaddress.ip_interface("10.77.0.5/24")
        p2p = ipaddress.ip_interface("10.78.0.1/31")
        v6 = ipaddress.ip_interface("fd77::5/64")
        for address in (v4, p2p, v6):
            addr.add_address(ipr, a.index, address, nodad=True)
        addr.add_address(ipr, a.index, v4)  # the same again is fine
        addr.add_address(ipr, b.index, ipaddress.ip_interface("10.79.0.1/24"))
        assert set(addr.list_addresses(ipr, a.index)) == {v4, p2p, v6}
        assert addr.list_addresses(ipr, a.index, 6) == [v6]
        details = {d.address: d for d in addr.details(ipr, a.index)}
        assert details[v4].broadcast == "10.77.0.255"
        assert details[p2p].broadcast is None
        assert addr.address_flags(ipr, a.index, v6) & addr.IFA_F_NODAD
        with pytest.raises(CNIError, match=r"cannot add address 10\.80\.0\.1/24 to 999999"):
            addr.add_address(ipr, 999999, ipaddress.ip_interface("10.80.0.1/24"))


def test_a_dump_spread_over_many_datagrams_is_read_whole(netns: Netns) -> None:
    with mh_netns.iproute_in(netns.path) as ipr:
        ipr.link("add", ifname="mhw-a", kind="veth", peer={"ifname": "mhw-b"})
        a = links.by_name(ipr, "mhw-a")
        assert a is not None
        want = {ipaddress.ip_interface(f"10.81.{i // 250}.{i % 250 + 1}/16") for i in range(600)}
        for address in want:
            addr.add_address(ipr, a.index, address)
        assert set(addr.list_addresses(ipr, a.index)) == want


def test_notifications_queued_before_an_answer_are_skipped(netns: Netns) -> None:
    # a socket someone subscribed still gets its answers: 40 link notifications wait
    # on it before the answer to the read
    with mh_netns.entered(netns.path):
        subscribed = _Subscribed()
    with subscribed.sock, mh_netns.iproute_in(netns.path) as ipr:
        for i in range(20):
            ipr.link("add", ifname=f"mhw-n{i}", kind="veth", peer={"ifname": f"mhw-m{i}"})
        raw = link_reads.get_link(subscribed, name="mhw-n19")
        assert raw is not None and raw.kind() == "veth"
        assert addr.list_addresses(subscribed, raw.index) == []


def test_a_pod_handle_acts_in_its_namespace_and_closes_everything(netns: Netns) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    with mh_netns.iproute_in(netns.path) as ipr:
        # the thread is back home here: pyroute2's calls still go to the pod's namespace
        ipr.link("add", ifname="mhw-p", kind="veth", peer={"ifname": "mhw-q"})
        assert {m.get_attr("IFLA_IFNAME") for m in ipr.get_links()} >= {"lo", "mhw-p", "mhw-q"}
        assert links.by_name(ipr, "mhw-p") is not None
    with IPRoute() as home:
        assert not home.link_lookup(ifname="mhw-p")
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert ipr.fileno() == -1  # closed
