"""Fixtures of the host-kernel integration tier (helpers: tests/support/)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.bridge_harness import Lab
from support.daemon_world import HOLD_PLUGIN, Node
from support.engine_world import World, engine_world
from support.netns import Netns, unique


@pytest.fixture
def lab(netns_factory: Callable[..., Netns], tmp_path: Path) -> Iterator[Lab]:
    """A node namespace for the bridge plugin run in-process, and containers to attach."""
    the_lab = Lab(node=netns_factory("mhbn"), make_ns=netns_factory, data_dir=tmp_path / "ipam")
    try:
        yield the_lab
    finally:
        the_lab.cleanup()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A store, state dirs and unique bridges for the attachment engine (test_engine)."""
    with engine_world(tmp_path) as w:
        yield w


@pytest.fixture
def node(tmp_path: Path, host_ns: Netns, cni_bin_dir: Path) -> Iterator[Node]:
    """A daemon world: its own conf and bin dirs, daemons started by the test."""
    tmp_path.chmod(0o700)
    n = Node(host_ns, tmp_path, cni_bin_dir, unique("mhd"))
    n.conf_dir.mkdir()
    n.extra_bin.mkdir()
    hold = n.extra_bin / "mh-hold"
    hold.write_text(HOLD_PLUGIN)
    hold.chmod(0o755)
    try:
        yield n
    finally:
        n.release()
        n.stop_all()

