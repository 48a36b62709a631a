"""Helpers for the node-policy interface-type tests (host tier and Debian-kernel tier)."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from pyroute2 import NetNS
from pyroute2.ethtool import Ethtool
from pyroute2.netlink.exceptions import NetlinkError

from multihome.net import netns
from multihome.node import current, transaction
from support import kstate
from support.netns import Netns


def kernel_has(ns: Netns, kind: str, **extra: Any) -> bool:
    """Whether the kernel creates `kind` links, tried in the test's own namespace (the
    probe link is removed at once)."""
    with NetNS(ns.name) as ipr:
        try:
            ipr.link("add", ifname="mhprobe0", kind=kind, **extra)
        except NetlinkError as e:
            if e.code in (errno.EOPNOTSUPP, errno.ENOTSUP):
                return False
            raise
        ipr.link("del", ifname="mhprobe0")
    return True


def shown(ns: Netns, name: str) -> dict[str, Any]:
    """`node show` of one interface."""
    state = current.show(ns.path, names={name})
    assert [i["name"] for i in state["interfaces"]] == [name], state
    iface: dict[str, Any] = state["interfaces"][0]
    return iface


def applies_and_rolls_back_exactly(ns: Netns, state: dict[str, Any]) -> list[str]:
    """Apply `state` without commit, then `node rollback`: the kernel's state (links,
    flags, MACs, addresses with their flags, routes of every table, rules) is exactly as
    before. Returns the changes the apply made."""
    before = kstate.snapshot(ns.name)
    report = transaction.apply_state(state, netns_path=ns.path, commit=False)
    assert report.changes
    assert kstate.snapshot(ns.name) != before
    assert transaction.rollback()[1]
    diff = kstate.snapshot_diff(before, kstate.snapshot(ns.name))
    assert not diff, "\n".join(diff)
    return report.changes


def show_applies_back_as_a_no_op(ns: Netns, names: set[str]) -> None:
    """What `node show` says about `names`, applied back, changes nothing."""
    state = current.show(ns.path, names=names)
    before = kstate.snapshot(ns.name)
    assert transaction.apply_state({"interfaces": state["interfaces"]},
                                   netns_path=ns.path).changes == []
    assert not kstate.snapshot_diff(before, kstate.snapshot(ns.name))


def missing_feature_is_refused(ns: Netns, state: dict[str, Any], message: str) -> None:
    """On a kernel without a link kind: a clear error naming it, the node unchanged."""
    before = kstate.snapshot(ns.name)
    with pytest.raises(transaction.ApplyFailed) as failed:
        transaction.apply_state(state, netns_path=ns.path)
    assert message in str(failed.value), str(failed.value)
    assert "earlier state was restored" in str(failed.value)
    assert not kstate.snapshot_diff(before, kstate.snapshot(ns.name))


def offloads(ns: Netns, ifname: str) -> dict[str, bool]:
    """Every ethtool feature of a link (fixed ones too), read with pyroute2's ethtool."""
    with netns.entered(ns.path), Ethtool() as tool:
        return {name: bool(f.enable)
                for name, f in tool.get_features(ifname).features.items() if name}
