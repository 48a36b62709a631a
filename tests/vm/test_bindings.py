"""The bridge binding inside a real namespace, without a VM: what it makes and undoes."""

from __future__ import annotations

import os
from typing import Any

import pytest

from multihome.vm import bindings
from multihome.vm.errors import VMError
from multihome.vm.state import Nic

pytestmark = pytest.mark.netns


def _links(ns: Any) -> dict[str, list[str]]:
    out = ns.run("ip", "-br", "link").stdout
    return {line.split()[0].split("@")[0]: line.split() for line in out.splitlines()}


@pytest.fixture
def pod(netns_factory: Any) -> Any:
    """A pod-like namespace whose net1 is a veth (as cnv-bridge leaves it) with an address."""
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("/dev/net/tun is missing: no tap devices on this host")
    ns = netns_factory("mvb")
    ns.run("ip", "link", "add", "net1", "type", "veth", "peer", "name", "peer1")
    ns.run("ip", "link", "set", "net1", "address", "02:00:00:aa:bb:01")
    ns.run("ip", "addr", "add", "10.70.0.5/24", "dev", "net1")
    ns.run("ip", "link", "set", "net1", "up")
    return ns


def test_bridge_binding_moves_mac_and_address_to_the_guest_and_undo_restores(pod: Any) -> None:
    nic = Nic("net1", "ns/nad", "bridge", "", guest_ifname="eth0")
    fd = bindings.bind(pod.path, nic)
    try:
        assert nic.mac == "02:00:00:aa:bb:01" and nic.addresses == ["10.70.0.5/24"]
        links = _links(pod)
        assert links["net1"][2] == nic.pod_mac != nic.mac
        assert int(nic.pod_mac.split(":")[0], 16) & 0x03 == 0x02  # local, unicast
        assert "k6t-net1" in links and "tap-net1" in links
        ports = pod.run("ip", "-o", "link", "show", "master", "k6t-net1").stdout
        assert "net1@" in ports and "tap-net1" in ports
        assert "10.70.0.5" not in pod.run("ip", "addr", "show", "net1").stdout
        assert pod.run("cat", "/proc/sys/net/ipv6/conf/k6t-net1/disable_ipv6").stdout == "1\n"
    finally:
        os.close(fd)  # the tap is not persistent: it goes with the last fd (qemu's)
    assert "tap-net1" not in _links(pod)
    bindings.unbind(pod.path, nic)
    links = _links(pod)
    assert "k6t-net1" not in links and links["net1"][2] == "02:00:00:aa:bb:01"
    assert "10.70.0.5/24" in pod.run("ip", "addr", "show", "net1").stdout
    bindings.unbind(pod.path, nic)  # twice is fine


def test_missing_pod_interface_names_the_binding_step(pod: Any) -> None:
    with pytest.raises(VMError) as err:
        bindings.bind(pod.path, Nic("net9", "ns/nad", "bridge", ""))
    assert err.value.step == "binding" and "no interface net9" in str(err.value)


def test_macvtap_binding_refuses_a_non_macvtap_interface(pod: Any) -> None:
    with pytest.raises(VMError) as err:
        bindings.bind(pod.path, Nic("net1", "ns/nad", "macvtap", ""))
    assert "is not a macvtap device" in str(err.value)
