"""net/'s scoped handles: a namespace opened for a body is closed however the body ends,
and reading the state of a link that vanished meanwhile is not a crash."""

from __future__ import annotations

import os
import threading

import pytest

from multihome.net import netns as mh_netns
from multihome.net import node_links
from support.netns import Netns

pytestmark = pytest.mark.netns


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_opened_closes_the_namespace_even_when_the_body_fails(netns: Netns) -> None:
    before = _open_fds()
    with pytest.raises(RuntimeError), mh_netns.opened(netns.path) as fd:
        assert os.fstat(fd).st_ino == os.stat(netns.path).st_ino
        raise RuntimeError("the body failed")
    assert _open_fds() == before


def test_opened_on_a_missing_namespace_is_netns_gone() -> None:
    with pytest.raises(mh_netns.NetnsGone), mh_netns.opened("/var/run/netns/mh-never-made"):
        pass


def test_details_of_a_link_that_vanished_is_empty_not_a_crash(netns: Netns) -> None:
    # `node apply` lists a namespace's links, then reads each one's details: a link
    # deleted in between (by another process) must not abort the apply with ENODEV.
    with mh_netns.iproute_in(netns.path) as ipr:
        assert node_links.details(ipr, 2**31 - 1) == node_links.LinkDetails()


def test_a_worker_thread_keeps_its_node_netlink_handle_but_never_a_pods(netns: Netns) -> None:
    seen: dict[str, object] = {}

    def worker() -> None:
        mh_netns.keep_netlink()
        with mh_netns.netlink() as first:
            first.link("get", index=1)
        with mh_netns.netlink() as again:
            again.link("get", index=1)  # still open after the first `with` ended
        seen["kept"] = first is again
        with mh_netns.iproute_in(netns.path) as a, mh_netns.iproute_in(netns.path) as b:
            seen["pod handles differ"] = a is not b

    def plain() -> None:
        with mh_netns.netlink() as a, mh_netns.netlink() as b:
            seen["unmarked handles differ"] = a is not b

    for target in (worker, plain):
        t = threading.Thread(target=target)
        t.start()
        t.join(timeout=30)
    assert seen == {"kept": True, "pod handles differ": True, "unmarked handles differ": True}
