"""The Debian-kernel tier: these tests only run inside the guest booted by run_tier.py.

On the host (whose kernel lacks 802.1Q, bridge VLAN filtering, ipvlan and dummy links) every
test in this directory is skipped with one reason; in the guest the runner sets
MH_KERNEL_TIER to the kernel release it booted, and a mismatch is an error, not a skip.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from bridge_harness import Lab

TIER_DIR = Path(__file__).resolve().parent
SKIP_REASON = "needs the Debian kernel tier (run via tests/kernel/run_tier.py)"
ROOT_CONFTEST = TIER_DIR.parent / "conftest.py"
# The tier reuses harnesses that live next to the host-kernel tests (bridge_harness, the
# conformance helpers); pytest only puts a directory on sys.path when it collects from it,
# and in the guest only this directory is collected.
for _helpers in ("integration", "conformance"):
    if str(TIER_DIR.parent / _helpers) not in sys.path:
        sys.path.append(str(TIER_DIR.parent / _helpers))


def in_guest() -> bool:
    """True when running inside the tier's guest (checked against the running kernel)."""
    return bool(os.environ.get("MH_KERNEL_TIER"))


@pytest.fixture
def lab(netns_factory: Any, tmp_path: Path) -> Iterator[Lab]:
    """A bridge_harness.Lab whose node kernel has bridge VLAN filtering (asserted: in the
    tier that is a precondition, not a reason to skip)."""
    from bridge_harness import Lab

    from conftest import unique
    from multihome.net import bridge_vlan
    from multihome.net.netns import iproute_in

    the_lab = Lab(node=netns_factory("mhbn"), make_ns=netns_factory, data_dir=tmp_path / "ipam")
    with iproute_in(the_lab.node.path) as ipr:
        assert bridge_vlan.supported(ipr, unique("mhbp")), "guest kernel lacks VLAN filtering"
    try:
        yield the_lab
    finally:
        the_lab.cleanup()


def pytest_configure(config: pytest.Config) -> None:
    # pytest imports every rootless conftest.py as module "conftest", so loading this file
    # replaced tests/conftest.py in sys.modules. Put the root one back: tests everywhere do
    # `from conftest import unique, Netns, run_cni`.
    for plugin in config.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", "") or "/").resolve() == ROOT_CONFTEST:
            sys.modules["conftest"] = plugin
            return


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
