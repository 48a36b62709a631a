"""Config parsing of the delegate plugins, without a kernel: each plugin's `parse(call)`.

Valid configs become the typed values the plugin acts on; invalid ones raise the CNI error
a runtime would see (InvalidConfig, code 7, for a bad key) with a message naming the key
and, where it helps, what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from multihome.cni.errors import INVALID_NETWORK_CONFIG, CNIError
from multihome.cni.skel import Call
from multihome.cni.types import CmdArgs, NetConf
from multihome.net import vf
from multihome.plugins import host_device, ipvlan, macvlan, macvtap, sriov, tap, tuning, vlan

IPAM = {"type": "static", "addresses": [{"address": "10.1.0.2/24"}]}


def make_call(plugin: str, command: str = "ADD", cni_args: str = "", **keys: Any) -> Call:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "cid1", "CNI_NETNS": "/run/netns/x",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": cni_args}
    raw = {"cniVersion": "1.0.0", "name": "net", "type": plugin, **keys}
    return Call(CmdArgs.from_env(env), NetConf.from_dict(raw))


def invalid(parse: Callable[[Call], Any], call: Call, *fragments: str) -> CNIError:
    """`parse(call)` must fail with InvalidConfig (7) and a message holding each fragment."""
    with pytest.raises(CNIError) as info:
        parse(call)
    err = info.value
    assert err.code == INVALID_NETWORK_CONFIG, (err.code, err.msg)
    for fragment in fragments:
        assert fragment in err.msg, f"{fragment!r} not in {err.msg!r}"
    return err


# --- macvlan -------------------------------------------------------------------------------

def test_macvlan_defaults_and_every_key() -> None:
    conf = macvlan.parse(make_call("macvlan", master="eth1", ipam=IPAM))
    assert (conf.mode, conf.mac, conf.base.master, conf.base.mtu) == ("bridge", "", "eth1", 0)
    assert conf.base.ipam_type == "static" and conf.base.link_in_container is False
    conf = macvlan.parse(make_call("macvlan", master="eth1", mode="passthru", mtu=1400,
                                   mac="0A:58:0A:01:00:02", linkInContainer=True))
    assert (conf.mode, conf.base.mtu, conf.mac) == ("passthru", 1400, "0a:58:0a:01:00:02")
    assert conf.base.link_in_container and conf.base.ipam_type == ""


def test_macvlan_master_defaults_to_the_default_route_interface() -> None:
    conf = macvlan.parse(make_call("macvlan"))
    assert conf.base.master == "" and conf.base.default_master  # resolved at ADD


def test_macvlan_mac_from_cni_args_wins_over_the_key() -> None:
    conf = macvlan.parse(make_call("macvlan", cni_args="MAC=0a:58:00:00:00:09",
                                   master="eth1", mac="0a:58:00:00:00:01"))
    assert conf.mac == "0a:58:00:00:00:09"


@pytest.mark.parametrize(("keys", "fragments"), [
    ({"mode": "bogus"}, ("unknown macvlan mode 'bogus'", "bridge, private, vepa, passthru")),
    ({"master": "a-name-longer-than-15"}, ("invalid macvlan 'master'",)),
    ({"master": "eth/1"}, ("invalid macvlan 'master'",)),
    ({"mtu": 70000}, ("invalid mtu 70000",)),
    ({"mtu": "1500"}, ("'mtu' must be an integer",)),
    ({"mac": "not-a-mac"}, ("invalid MAC address 'not-a-mac'",)),
    ({"linkInContainer": "yes"}, ("'linkInContainer' must be true or false",)),
])
def test_macvlan_invalid(keys: dict[str, Any], fragments: tuple[str, ...]) -> None:
    invalid(macvlan.parse, make_call("macvlan", **{"master": "eth1", **keys}), *fragments)


# --- ipvlan --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["l2", "l3", "l3s"])
def test_ipvlan_modes(mode: str) -> None:
    conf = ipvlan.parse(make_call("ipvlan", master="eth1", mode=mode, mtu=1300, ipam=IPAM))
    assert (conf.mode, conf.base.master, conf.base.mtu) == (mode, "eth1", 1300)


def test_ipvlan_defaults_to_l2() -> None:
    assert ipvlan.parse(make_call("ipvlan", master="eth1", ipam=IPAM)).mode == "l2"


def test_ipvlan_chained_takes_master_and_addresses_from_prev_result() -> None:
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "uplink0"}],
            "ips": [{"address": "10.1.0.5/24"}]}
    conf = ipvlan.parse(make_call("ipvlan", prevResult=prev))
    assert conf.base.master == "uplink0" and conf.base.ipam_type == ""


@pytest.mark.parametrize(("keys", "fragments"), [
    ({"mode": "l4", "ipam": IPAM}, ("unknown ipvlan mode 'l4'", "l2, l3, l3s")),
    ({}, ('ipvlan needs an "ipam" section',)),
    ({"master": "x" * 16, "ipam": IPAM}, ("invalid ipvlan 'master'",)),
])
def test_ipvlan_invalid(keys: dict[str, Any], fragments: tuple[str, ...]) -> None:
    invalid(ipvlan.parse, make_call("ipvlan", **{"master": "eth1", **keys}), *fragments)


def test_ipvlan_without_ipam_is_fine_on_del() -> None:
    # DEL must work with whatever config the runtime still has.
    assert ipvlan.parse(make_call("ipvlan", command="DEL", master="eth1")).mode == "l2"


# --- vlan ----------------------------------------------------------------------------------

@pytest.mark.parametrize("vid", [0, 1, 100, 4094])
def test_vlan_ids(vid: int) -> None:
    conf = vlan.parse(make_call("vlan", master="eth1", vlanId=vid, mtu=1400))
    assert (conf.vlan_id, conf.base.master, conf.base.mtu) == (vid, "eth1", 1400)
    assert conf.base.default_master is False


@pytest.mark.parametrize(("keys", "fragments"), [
    ({"vlanId": 100}, ('the "master" key is required',)),
    ({"master": "eth1", "vlanId": 4095}, ("invalid VLAN ID 4095", "between 0 and 4094")),
    ({"master": "eth1", "vlanId": -1}, ("invalid VLAN ID -1",)),
    ({"master": "eth1", "vlanId": "100"}, ("'vlanId' must be an integer",)),
    ({"master": "eth1", "vlanId": True}, ("'vlanId' must be an integer",)),
    ({"master": "way-too-long-master", "vlanId": 1}, ("invalid vlan 'master'",)),
])
def test_vlan_invalid(keys: dict[str, Any], fragments: tuple[str, ...]) -> None:
    invalid(vlan.parse, make_call("vlan", **keys), *fragments)


# --- tap -----------------------------------------------------------------------------------

def test_tap_every_key() -> None:
    conf = tap.parse(make_call("tap", mac="0a:58:00:00:00:07", mtu=1450, multiQueue=True,
                               owner=107, group=0, bridge="br1", ipam=IPAM))
    assert conf == tap.TapConf(mac="0a:58:00:00:00:07", mtu=1450, multi_queue=True, owner=107,
                               group=0, bridge="br1", ipam_type="static")


def test_tap_defaults() -> None:
    assert tap.parse(make_call("tap")) == tap.TapConf(
        mac="", mtu=0, multi_queue=False, owner=None, group=None, bridge="", ipam_type="")


@pytest.mark.parametrize(("keys", "fragments"), [
    ({"owner": -1}, ("tap owner -1 is not a valid id",)),
    ({"group": 2**32}, ("tap group 4294967296 is not a valid id",)),
    ({"owner": "root"}, ("'owner' must be an integer",)),
    ({"multiQueue": 1}, ("'multiQueue' must be true or false",)),
    ({"bridge": "bridge-name-too-long"}, ("invalid tap 'bridge'",)),
    ({"mac": "ff:ff:ff:ff:ff:ff"}, ("invalid MAC address",)),
])
def test_tap_invalid(keys: dict[str, Any], fragments: tuple[str, ...]) -> None:
    invalid(tap.parse, make_call("tap", **keys), *fragments)


# --- macvtap -------------------------------------------------------------------------------

def test_macvtap_every_key() -> None:
    conf = macvtap.parse(make_call("macvtap", master="eth1", mode="vepa", mtu=1400,
                                   promiscMode=True, mac="0a:58:00:00:00:08"))
    assert conf == macvtap.MacvtapConf(master="eth1", mode="vepa", mtu=1400, promisc=True,
                                       mac="0a:58:00:00:00:08")


def test_macvtap_device_id_names_the_lower_device() -> None:
    conf = macvtap.parse(make_call("macvtap", runtimeConfig={"deviceID": "ens5f1"},
                                   master="eth1"))
    assert (conf.master, conf.mode, conf.promisc) == ("ens5f1", "bridge", False)


@pytest.mark.parametrize(("keys", "fragments"), [
    ({}, ('set "master" (or deviceID)',)),
    ({"master": "eth1", "mode": "l2"}, ("unknown macvtap mode 'l2'",)),
    ({"deviceID": "a-device-name-that-is-too-long"}, ("invalid macvtap 'master'",)),
    ({"master": "eth1", "promiscMode": "on"}, ("'promiscMode' must be true or false",)),
])
def test_macvtap_invalid(keys: dict[str, Any], fragments: tuple[str, ...]) -> None:
    invalid(macvtap.parse, make_call("macvtap", **keys), *fragments)


# --- tuning --------------------------------------------------------------------------------

@pytest.fixture
def no_allowlist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(tuning.ENV_ALLOWLIST, str(tmp_path / "absent.conf"))


def test_tuning_every_key(no_allowlist: None) -> None:
    conf = tuning.parse(make_call(
        "tuning", sysctl={"net.ipv4.conf.eth0.arp_filter": "1",
                          "net/ipv6/conf/eth0/accept_dad": "0"},
        mac="0a:58:00:00:00:0a", mtu=1280, promisc=True, allmulti=False, txQLen=50,
        dataDir="/tmp/x"))
    assert conf == tuning.TuningConf(
        sysctls={"net.ipv4.conf.eth0.arp_filter": "1", "net/ipv6/conf/eth0/accept_dad": "0"},
        mac="0a:58:00:00:00:0a", mtu=1280, promisc=True, allmulti=False, txqlen=50,
        data_dir="/tmp/x")


def test_tuning_unset_keys_mean_leave_alone(no_allowlist: None) -> None:
    conf = tuning.parse(make_call("tuning"))
    assert (conf.promisc, conf.allmulti, conf.txqlen, conf.mtu, conf.sysctls) == \
        (None, None, None, 0, {})
    assert conf.data_dir == tuning.DEFAULT_DATA_DIR


@pytest.mark.parametrize(("keys", "fragments"), [
    ({"sysctl": {"kernel.panic": "1"}}, ("'kernel.panic' is not allowed", "only net.*")),
    ({"sysctl": {"vm/swappiness": "1"}}, ("'vm/swappiness' is not allowed",)),
    ({"sysctl": {"net..ipv4": "1"}}, ("'net..ipv4' is not allowed",)),
    ({"sysctl": {"net.ipv4.ip_forward": 1}}, ("value must be a string",)),
    ({"sysctl": ["net.ipv4.ip_forward=1"]}, ("'sysctl' must be an object",)),
    ({"txQLen": -1}, ("invalid txQLen -1",)),
    ({"mtu": -5}, ("invalid mtu -5",)),
    ({"promisc": "true"}, ("'promisc' must be true or false",)),
    ({"mac": "01:00:5e:00:00:01"}, ("invalid MAC address",)),
])
def test_tuning_invalid(no_allowlist: None, keys: dict[str, Any],
                        fragments: tuple[str, ...]) -> None:
    invalid(tuning.parse, make_call("tuning", **keys), *fragments)


def test_tuning_allowlist_limits_net_keys(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    allow = tmp_path / "allowlist.conf"
    allow.write_text("# comment\n^net\\.ipv4\\.conf\\.[^.]+\\.arp_filter$\n")
    monkeypatch.setenv(tuning.ENV_ALLOWLIST, str(allow))
    ok = tuning.parse(make_call("tuning", sysctl={"net.ipv4.conf.eth0.arp_filter": "1"}))
    assert ok.sysctls == {"net.ipv4.conf.eth0.arp_filter": "1"}
    invalid(tuning.parse, make_call("tuning", sysctl={"net.ipv4.ip_forward": "1"}),
            "'net.ipv4.ip_forward' is not in the allow-list")


# --- host-device ---------------------------------------------------------------------------

@pytest.mark.parametrize(("keys", "field", "value"), [
    ({"device": "ens5"}, "device", "ens5"),
    ({"hwaddr": "0A:58:00:00:00:0B"}, "hwaddr", "0a:58:00:00:00:0b"),
    ({"kernelpath": "/sys/devices/pci0000:00/0000:00:05.0"}, "kernelpath",
     "/sys/devices/pci0000:00/0000:00:05.0"),
    ({"pciBusID": "0000:03:00.1"}, "pci", "0000:03:00.1"),
    ({"runtimeConfig": {"deviceID": "0000:03:00.2"}, "pciBusID": "0000:03:00.1"}, "pci",
     "0000:03:00.2"),
])
def test_host_device_selectors(keys: dict[str, Any], field: str, value: str) -> None:
    conf = host_device.parse(make_call("host-device", **keys))
    assert getattr(conf, field) == value


def test_host_device_sysfs_root_is_configurable() -> None:
    conf = host_device.parse(make_call("host-device", device="ens5", sysfsRoot="/tmp/fake"))
    assert conf.sys_root == Path("/tmp/fake")


@pytest.mark.parametrize(("keys", "fragments"), [
    ({}, ('specify one of "device", "hwaddr", "kernelpath", "pciBusID"',)),
    ({"device": "device-name-too-long"}, ("invalid host-device 'device'",)),
    ({"hwaddr": "zz:zz"}, ("invalid MAC address 'zz:zz' in host-device hwaddr",)),
    ({"device": 5}, ("'device' must be a string",)),
    ({"runtimeConfig": {"deviceID": 7}}, ("runtimeConfig.deviceID must be a string",)),
])
def test_host_device_invalid(keys: dict[str, Any], fragments: tuple[str, ...]) -> None:
    invalid(host_device.parse, make_call("host-device", **keys), *fragments)


# --- sriov ---------------------------------------------------------------------------------

def test_sriov_every_vf_setting() -> None:
    conf = sriov.parse(make_call(
        "sriov", deviceID="0000:03:02.0", mac="0a:58:00:00:00:0c", vlan=100, vlanQoS=3,
        spoofchk="off", trust="on", link_state="enable", min_tx_rate=10, max_tx_rate=100,
        sysfsRoot="/tmp/fake-sys", dataDir="/tmp/sriov", ipam=IPAM))
    assert conf.pci == "0000:03:02.0"
    assert conf.settings == vf.VfSettings(mac="0a:58:00:00:00:0c", vlan=100, qos=3,
                                          spoofchk=False, trust=True, link_state="enable",
                                          min_tx_rate=10, max_tx_rate=100)
    assert (conf.sysfs_root, conf.data_dir, conf.ipam_type) == \
        ("/tmp/fake-sys", "/tmp/sriov", "static")


def test_sriov_unset_settings_are_left_alone() -> None:
    conf = sriov.parse(make_call("sriov", runtimeConfig={"deviceID": "0000:03:02.1"}))
    assert conf.pci == "0000:03:02.1" and conf.settings.empty()


@pytest.mark.parametrize(("keys", "fragments"), [
    ({"deviceID": ""}, ("deviceID (the VF's PCI address) is required",)),
    ({"vlan": 4095}, ("invalid sriov vlan 4095", "between 0 and 4094")),
    ({"vlan": 10, "vlanQoS": 8}, ("invalid sriov vlanQoS 8",)),
    ({"vlanQoS": 2}, ("vlanQoS needs a non-zero vlan",)),
    ({"min_tx_rate": 100, "max_tx_rate": 10}, ("min_tx_rate 100 is greater than max_tx_rate",)),
    ({"link_state": "up"}, ("unknown sriov link_state 'up'", "auto, enable, disable")),
    ({"spoofchk": True}, ("'spoofchk' must be a string",)),
    ({"trust": "yes"}, ("unknown sriov trust 'yes'", "on, off")),
])
def test_sriov_invalid(keys: dict[str, Any], fragments: tuple[str, ...]) -> None:
    invalid(sriov.parse, make_call("sriov", **{"deviceID": "0000:03:02.0", **keys}), *fragments)


# --- names the runtime passes ----------------------------------------------------------------

@pytest.mark.parametrize("ifname", ["x" * 16, "a/b", "."])
def test_container_ifname_is_checked_before_any_plugin(ifname: str) -> None:
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "cid1", "CNI_NETNS": "/run/netns/x",
           "CNI_IFNAME": ifname, "CNI_PATH": "/usr/lib/cni"}
    with pytest.raises(CNIError) as info:
        CmdArgs.from_env(env)
    assert info.value.code == 4 and "interface name" in info.value.msg.lower(), info.value.msg
