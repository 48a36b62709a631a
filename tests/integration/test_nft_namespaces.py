"""nftables from a long-lived process: what it keeps open, and where.

The daemon keeps its nftables handles for its own namespace between calls; a visit to a
pod's namespace (policy rules, a VM's masquerade table) must leave no socket behind, or
the pod's namespace and its links would outlive the pod.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from multihome.net import netns as netns_mod
from multihome.net import nft
from support.netns import Netns
from support.sockets import own_sockets_in

pytestmark = pytest.mark.netns

TABLE = {"family": "inet", "name": "mhvisit"}


def test_nft_leaves_no_socket_in_a_namespace_it_visited(netns: Netns) -> None:
    with netns_mod.entered(netns.path):
        nft.run([{"add": {"table": TABLE}}])
        assert nft.table_names("inet") == ["mhvisit"]
        assert nft.table_exists("inet", "mhvisit")
    assert own_sockets_in(netns.path) == 0


def test_each_visit_sees_the_namespace_as_it_is_now(netns: Netns) -> None:
    with netns_mod.entered(netns.path):
        nft.run([{"add": {"table": TABLE}}])
    with netns_mod.entered(netns.path):
        nft.run([{"delete": {"table": TABLE}}])
        assert nft.table_names("inet") == []
        assert not nft.table_exists("inet", "mhvisit")
    assert own_sockets_in(netns.path) == 0


def test_threads_listing_tables_at_home_each_keep_their_own_dump_socket(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """pyroute2 keeps a socket's asyncio loop per thread, the opener's only between
    calls: a dump socket shared by the daemon's workers made every other worker open a
    new loop per call (and pyroute2 remembered each one for good)."""
    loops: list[int] = []
    new_event_loop = asyncio.new_event_loop

    def counted() -> asyncio.AbstractEventLoop:
        loops.append(threading.get_ident())
        return new_event_loop()

    monkeypatch.setattr(asyncio, "new_event_loop", counted)

    def lister() -> None:
        try:
            for _ in range(5):
                nft.table_names("inet")
        finally:
            nft.close_thread_handles()

    for _ in range(3):  # three worker threads, one after the other
        worker = threading.Thread(target=lister)
        worker.start()
        worker.join()
    assert len(loops) == 3
