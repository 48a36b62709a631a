"""The Debian-kernel tier: these tests only run inside the guest booted by run_tier.py.

On the host (whose kernel lacks 802.1Q, bridge VLAN filtering, ipvlan and dummy links) every
test in this directory is skipped with one reason; in the guest the runner sets
MH_KERNEL_TIER to the kernel release it booted, and a mismatch is an error, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from multihome.net import bridge_vlan
from multihome.net.netns import iproute_in
from support.bridge_harness import Lab
from support.netns import Netns, unique

TIER_DIR = Path(__file__).resolve().parent
SKIP_REASON = "needs the Debian kernel tier (run via tests/kernel/run_tier.py)"


def in_guest() -> bool:
    """True when running inside the tier's guest (checked against the running kernel)."""
    return bool(os.environ.get("MH_KERNEL_TIER"))


@pytest.fixture
def lab(netns_factory: Callable[..., Netns], tmp_path: Path) -> Iterator[Lab]:
    """A support.bridge_harness.Lab whose node kernel has bridge VLAN filtering (asserted:
    in the tier that is a precondition, not a reason to skip)."""
    the_lab = Lab(node=netns_factory("mhbn"), make_ns=netns_factory, data_dir=tmp_path / "ipam")
    with iproute_in(the_lab.node.path) as ipr:
        assert bridge_vlan.supported(ipr, unique("mhbp")), "guest kernel lacks VLAN filtering"
    try:
        yield the_lab
    finally:
        the_lab.cleanup()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Called with the whole session's items, not only this directory's.
    ours = [item for item in items if TIER_DIR in Path(item.path).resolve().parents]
    if not ours:
        return
    wanted = os.environ.get("MH_KERNEL_TIER")
    if not wanted:
        skip = pytest.mark.skip(reason=SKIP_REASON)
        for item in ours:
            item.add_marker(skip)
        return
    running = os.uname().release
    if running != wanted:
        raise pytest.UsageError(
            f"MH_KERNEL_TIER={wanted} but the running kernel is {running}: the kernel tier "
            "must run inside the guest that tests/kernel/run_tier.py boots")
