"""Bad configs, failed ADDs that must undo everything, and DEL idempotency."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from multihome.net import netns
from support import kstate
from support.bridge_harness import Lab

pytestmark = pytest.mark.netns


@pytest.mark.parametrize(("keys", "needle"), [
    ({"promiscMode": True, "hairpinMode": True}, "hairpinMode and promiscMode"),
    ({"vlan": 5000}, "invalid VLAN ID 5000"),
    ({"vlan": -1}, "invalid VLAN ID -1"),
    ({"vlanTrunk": [{"id": 0}]}, "incorrect trunk id"),
    ({"vlanTrunk": [{"minID": 20, "maxID": 10}]}, "greater than maxID"),
    ({"vlanTrunk": [{"minID": 5}]}, "maxID is missing"),
    ({"vlanTrunk": [{"maxID": 5}]}, "minID is missing"),
    ({"vlanTrunk": [{"id": 4095}]}, "incorrect trunk id"),
    ({"vlanTrunk": {"id": 5}}, "must be a list"),
    ({"vlan": 10, "vlanTrunk": [{"id": 5}]}, "vlan and vlanTrunk"),
    ({"disableContainerInterface": True}, "disableContainerInterface"),
    ({"mtu": "big"}, "'mtu' must be an integer"),
    ({"isGateway": "yes"}, "'isGateway' must be true or false"),
    ({"runtimeConfig": {"mac": "01:00:5e:00:00:01"}}, "multicast"),
    ({"bridge": "a/b"}, "invalid bridge name"),
])
def test_bad_config_is_code_7_and_leaves_nothing(lab: Lab, keys: dict[str, Any],
                                                 needle: str) -> None:
    c1 = lab.make_ns("mhbc")
    br = lab.bridge_name()
    conf = {**lab.conf(br), **keys}
    err = lab.call("ADD", conf, c1).error(7)
    assert needle in err["msg"]
    assert br not in lab.node_links()
    lab.assert_clean(c1)


def test_ipam_failure_undoes_the_veth_and_rules(lab: Lab) -> None:
    c1, c2 = lab.make_ns("mhbc"), lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), subnet="10.72.0.0/30", macspoofchk=True, ipMasq=True)
    lab.add(conf, c1, cid="first")  # takes the only free address
    err = lab.call("ADD", conf, c2, cid="second")
    assert err.rc != 0
    assert set(kstate.links(c2.name)) == {"lo"}
    assert kstate.macspoof_state(lab.node.name, "second", "eth0") == {"chains": [],
                                                                       "comments": []}
    assert lab.allocations() == ["10.72.0.2"]
    lab.call("DEL", conf, c1, cid="first").ok()
    lab.assert_clean(c1, c2)


def test_failure_after_ipam_releases_the_ip_and_removes_everything(lab: Lab) -> None:
    c1, c2 = lab.make_ns("mhbc"), lab.make_ns("mhbc")
    br = lab.bridge_name()
    lab.add(lab.conf(br, subnet=None), c1, cid="warm")
    lab.node.run("ip", "addr", "add", "10.70.0.200/24", "dev", br)
    conf = lab.conf(br, isGateway=True, macspoofchk=True, ipMasq=True)
    assert lab.call("ADD", conf, c2, cid="fails").rc != 0
    assert set(kstate.links(c2.name)) == {"lo"}
    assert lab.allocations() == []
    assert kstate.macspoof_state(lab.node.name, "fails", "eth0")["chains"] == []
    assert "inet multihome_masq" not in kstate.nft_tables(lab.node.name)
    lab.call("DEL", lab.conf(br, subnet=None), c1, cid="warm").ok()
    lab.assert_clean(c1, c2)


def test_add_refuses_an_interface_name_already_in_the_container(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), macspoofchk=True)
    lab.add(conf, c1, cid="one")
    err = lab.call("ADD", conf, c1, cid="two")
    assert err.rc != 0 and "already has an interface named eth0" in err.out["msg"]
    assert lab.allocations() == ["10.70.0.2"]
    lab.call("DEL", conf, c1, cid="one").ok()
    lab.assert_clean(c1)


def test_add_into_a_missing_netns_is_a_clear_error(lab: Lab) -> None:
    conf = lab.conf(lab.bridge_name())
    err = lab.call("ADD", conf, netns_path="/var/run/netns/mhb-no-such-ns")
    assert err.rc != 0 and "does not exist" in err.out["msg"]
    lab.assert_clean()


@pytest.mark.parametrize("extra", [{}, {"macspoofchk": True, "ipMasq": True}])
def test_del_twice_succeeds(lab: Lab, extra: dict[str, Any]) -> None:
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), **extra)
    lab.add(conf, c1)
    lab.call("DEL", conf, c1).ok()
    lab.call("DEL", conf, c1).ok()
    lab.assert_clean(c1)


def test_del_after_netns_deleted_cleans_rules_and_ip(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), macspoofchk=True, ipMasq=True)
    lab.add(conf, c1)
    netns.delete_named(c1.name)
    lab.call("DEL", conf, c1).ok()
    lab.call("DEL", conf, netns_path="").ok()
    lab.assert_clean()


def test_del_without_prior_add_succeeds(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), macspoofchk=True, ipMasq=True)
    lab.call("DEL", conf, c1, cid="never").ok()
    lab.call("DEL", conf, netns_path="/var/run/netns/mhb-gone", cid="never").ok()
    lab.assert_clean(c1)


def test_del_when_netns_path_is_gone_but_namespace_lives_removes_host_veth(lab: Lab) -> None:
    """A process still holds the namespace: the veth survives the unmounted path, and the
    spoof-check rule's iifname is how DEL finds and removes its host end."""
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), macspoofchk=True)
    result = lab.add(conf, c1)
    host_veth = result["interfaces"][1]["name"]
    holder = subprocess.Popen(["ip", "netns", "exec", c1.name, "sleep", "60"])
    try:
        time.sleep(0.3)  # let the holder enter the namespace before its path goes
        netns.delete_named(c1.name)
        assert host_veth in lab.node_links()
        lab.call("DEL", conf, c1).ok()
        assert host_veth not in lab.node_links()
        lab.assert_clean()
    finally:
        holder.kill()
        holder.wait()
