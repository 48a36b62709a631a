"""Fixtures of the host-kernel integration tier (helpers: tests/support/)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.bridge_harness import Lab
from support.engine_world import World, engine_world
from support.netns import Netns


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
