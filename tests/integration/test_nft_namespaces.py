"""nftables from a long-lived process: what it keeps open, and where.

The daemon keeps its nftables handles for its own namespace between calls; a visit to a
pod's namespace (policy rules, a VM's masquerade table) must leave no socket behind, or
the pod's namespace and its links would outlive the pod.
"""

from __future__ import annotations

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
