"""VLAN keys (vlan, vlanTrunk, preserveDefaultVlan) on a kernel WITHOUT bridge VLAN filtering.

Support is detected by turning VLAN filtering on for a throwaway bridge. On such a kernel
(this host's) the plugin must fail with a message naming the missing kernel option and
leave nothing behind. The VLAN behaviour itself, with tagged traffic, is tested in the
Debian-kernel tier: tests/kernel/test_bridge_vlan_tier.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from multihome.net import bridge_vlan
from multihome.net.netns import iproute_in
from support.bridge_harness import Lab
from support.netns import unique

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("keys", [{"vlan": 100}, {"vlanTrunk": [{"id": 5}]}])
def test_vlan_on_a_kernel_without_filtering_is_a_clear_error(lab: Lab,
                                                             keys: dict[str, Any]) -> None:
    with iproute_in(lab.node.path) as ipr:
        if bridge_vlan.supported(ipr, unique("mhbp")):
            pytest.skip("this kernel has bridge VLAN filtering; the error path cannot happen "
                        "(tests/kernel/test_bridge_vlan_tier.py covers VLANs)")
    c1 = lab.make_ns("mhbc")
    br = lab.bridge_name()
    out = lab.call("ADD", lab.conf(br, **keys), c1)
    assert out.rc != 0 and "lacks bridge VLAN filtering" in out.out["msg"]
    assert br not in lab.node_links()
    lab.assert_clean(c1)
