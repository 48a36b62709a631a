"""The masquerade binding's rules and options, and launcher pod names, without a kernel."""

from __future__ import annotations

import json
from typing import Any

import pytest

from multihome.vm import launcher, masquerade, qemu
from multihome.vm.errors import VMError
from multihome.vm.state import Nic, VMRecord, find_nic


def test_no_ports_dnat_everything_arriving_on_eth0_and_masquerade_the_guest() -> None:
    text = json.dumps(masquerade.nat_rules("eth0", []))
    rules = [c["add"]["rule"] for c in masquerade.nat_rules("eth0", []) if "rule" in c["add"]]
    pre = [r for r in rules if r["chain"] == "prerouting"]
    post = [r for r in rules if r["chain"] == "postrouting"]
    assert len(pre) == 1 and pre[0]["expr"][-1] == {"dnat": {"addr": "10.0.2.2"}}
    assert {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}} \
        in pre[0]["expr"]
    assert len(post) == 1 and post[0]["expr"][-1] == {"masquerade": None}
    assert '"right": "10.0.2.2"' in text and '"oifname"' in text


def test_listed_ports_are_the_only_ones_forwarded() -> None:
    rules = [c["add"]["rule"] for c in masquerade.nat_rules("eth0", ["80", "53/udp"])
             if "rule" in c["add"] and c["add"]["rule"]["chain"] == "prerouting"]
    ports = [(e["match"]["left"]["payload"]["protocol"], e["match"]["right"])
             for r in rules for e in r["expr"] if "payload" in e.get("match", {}).get("left", {})]
    assert ports == [("tcp", 80), ("udp", 53)]


@pytest.mark.parametrize("bad", ["0", "65536", "80/sctp", "http", "", "80/", "-1", "8 0"])
def test_bad_ports_are_refused_with_the_expected_form(bad: str) -> None:
    with pytest.raises(ValueError, match="expected PORT"):
        masquerade.parse_port(bad)


def test_a_dhcp_nic_asks_for_dhcp_on_the_kernel_command_line() -> None:
    pod = Nic("eth0", "pod", "masquerade", "02:00:00:00:00:01", guest_ifname="eth0",
              dhcp=True)
    static = Nic("net1", "ns/a", "bridge", "02:00:00:00:00:02", addresses=["10.1.0.5/24"],
                 guest_ifname="eth1")
    line = qemu.kernel_cmdline("v", [pod, static])
    assert "ip=:::::eth0:dhcp" in line and "ip=10.1.0.5:::255.255.255.0::eth1:off" in line
    assert qemu.device_args(static, 1) == \
        "virtio-net-pci,netdev=nic1,id=nic1-dev,mac=02:00:00:00:00:02,addr=0x4"


def test_a_nic_is_found_by_pod_interface_guest_interface_or_network() -> None:
    rec = VMRecord("v", "ns", 64, "a", nics=[
        Nic("eth0", "pod", "masquerade", "", guest_ifname="eth0"),
        Nic("net1", "ns/a", "bridge", "", guest_ifname="eth1")])
    assert find_nic(rec, "net1") is rec.nics[1] and find_nic(rec, "eth1") is rec.nics[1]
    assert find_nic(rec, "eth0") is rec.nics[0] and find_nic(rec, "a") is rec.nics[1]
    assert find_nic(rec, "ns/a") is rec.nics[1] and find_nic(rec, "pod") is rec.nics[0]
    with pytest.raises(VMError, match="has no NIC 'net7'"):
        find_nic(rec, "net7")


def test_launcher_pod_names_map_back_to_their_vm() -> None:
    assert launcher.candidate_vms("virt-launcher-web") == ["web"]
    assert launcher.candidate_vms("virt-launcher-web-0a1b2") == ["web-0a1b2", "web"]
    assert launcher.candidate_vms("virt-launcher-") == []
    assert launcher.candidate_vms("web") == []


def test_the_migration_guard_drops_a_vm_mac_from_every_port_but_the_source() -> None:
    from multihome.vm import announce_guard

    cmds = announce_guard.rules("mh-migrate-x", [("02:00:00:00:00:09", "veth1")])
    chain = cmds[1]["add"]["chain"]
    assert (chain["family"], chain["hook"], chain["prio"]) == ("bridge", "prerouting", -300)
    [rule] = [c["add"]["rule"] for c in cmds if "rule" in c["add"]]
    assert rule["expr"][0]["match"]["right"] == "02:00:00:00:00:09"
    assert rule["expr"][1]["match"] == {"op": "!=", "left": {"meta": {"key": "iifname"}},
                                        "right": "veth1"}
    assert rule["expr"][-1] == {"drop": None}
    assert announce_guard.table_name("ns", "a") != announce_guard.table_name("ns", "b")


def test_a_migration_target_asks_cni_for_each_nics_interface_and_mac() -> None:
    from multihome.lab import migration, vms

    pod = Nic("eth0", "pod", "masquerade", "02:00:00:00:00:01", dhcp_pid=42, bridge="k6t")
    net1 = Nic("net1", "ns/a", "bridge", "02:00:00:00:00:02", pod_mac="02:aa:00:00:00:00",
               pod_addresses=["10.1.0.5/24"], addresses=["10.1.0.5/24"], link="down")
    assert json.loads(vms.nics_selection([pod, net1])) == [
        {"name": "a", "namespace": "ns", "interface": "net1", "mac": "02:00:00:00:00:02"}]
    t_pod, t_net1 = migration._target_nics([pod, net1])
    assert (t_pod.dhcp_pid, t_pod.bridge, t_net1.pod_mac, t_net1.pod_addresses) == \
        (0, "", "", [])
    assert (t_net1.mac, t_net1.addresses, t_net1.link) == (net1.mac, net1.addresses, "down")
    assert vms.nics_selection([pod]) == ""


def test_unplug_drops_the_named_element_or_the_first_unnamed_of_the_network() -> None:
    from multihome.lab.vm_hotplug import _without

    a: dict[str, object] = {"name": "a", "namespace": "ns"}
    named: dict[str, object] = {"name": "a", "namespace": "ns", "interface": "net3"}
    nic = Nic("net3", "ns/a", "bridge", "")
    assert _without([a, named], nic) == [a]
    assert _without([a, dict(a)], Nic("net1", "ns/a", "bridge", "")) == [a]
    assert _without([named], Nic("net9", "ns/b", "bridge", "")) == [named]


def test_one_change_of_a_vm_at_a_time(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl
    import os

    from multihome.vm import state

    monkeypatch.setattr(state, "LOCK_WAIT", 0.3)
    os.makedirs(state.vm_dir(str(tmp_path), "ns", "v"))
    with state.changing(str(tmp_path), "ns", "v"), \
            pytest.raises(VMError, match='another change of VM "v"'), \
            state.changing(str(tmp_path), "ns", "v"):
        pass
    with state.changing(str(tmp_path), "ns", "v"):  # released: free again
        held = os.open(os.path.join(state.vm_dir(str(tmp_path), "ns", "v"), state.LOCK_FILE),
                       os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(held)
    with pytest.raises(VMError, match='VM "w" not found'), \
            state.changing(str(tmp_path), "ns", "w"):
        pass
