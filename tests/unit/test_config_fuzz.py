"""Hypothesis: every built-in plugin's config parser, and both IPAM parsers, either return a
config or raise the project's CNIError, for any JSON value in any key they read (strings
where numbers are expected, lists for objects, null, booleans as integers, floats, huge
integers, deep nesting). Nothing else may escape: a stray TypeError or OverflowError
would reach the runtime as an "internal error" instead of a sentence naming the key.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multihome.cni import jsontext
from multihome.cni.errors import CNIError
from multihome.cni.skel import Call
from multihome.cni.types import CmdArgs, NetConf
from multihome.ipam import host_local, static
from multihome.plugins import (
    bridge_config,
    host_device,
    ipvlan,
    macvlan,
    macvtap,
    sriov,
    tap,
    tuning,
    vlan,
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**31, max_value=2**70),
    st.integers(max_value=-1), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), st.sampled_from(["", "eth0", "0a:58:0a:01:00:02", "10.1.0.2/24",
                                           "/tmp", "relative/dir", "1500", "on", "bridge"]),
)
any_json: st.SearchStrategy[Any] = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                     st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)


def keys(*names: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={n: any_json for n in names})


COMMON = ("mac", "mtu", "ipam", "dns", "runtimeConfig", "args", "prevResult")
PARSERS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "bridge": (bridge_config.parse, (
        "bridge", "isGateway", "isDefaultGateway", "forceAddress", "ipMasq", "hairpinMode",
        "promiscMode", "vlan", "vlanTrunk", "preserveDefaultVlan", "macspoofchk", "enabledad",
        "disableContainerInterface", "portIsolation")),
    "macvlan": (macvlan.parse, ("master", "mode", "linkInContainer")),
    "ipvlan": (ipvlan.parse, ("master", "mode", "linkInContainer")),
    "vlan": (vlan.parse, ("master", "vlanId", "linkInContainer")),
    "tap": (tap.parse, ("multiQueue", "owner", "group", "bridge")),
    "macvtap": (macvtap.parse, ("master", "deviceID", "mode", "promiscMode")),
    "tuning": (tuning.parse, ("sysctl", "promisc", "allmulti", "txQLen", "dataDir")),
    "host-device": (host_device.parse, ("device", "hwaddr", "kernelpath", "pciBusID",
                                        "deviceID", "sysfsRoot")),
    "sriov": (sriov.parse, ("deviceID", "vlan", "vlanQoS", "spoofchk", "trust", "link_state",
                            "min_tx_rate", "max_tx_rate", "sysfsRoot", "dataDir")),
}
nested = st.fixed_dictionaries({}, optional={
    "runtimeConfig": keys("mac", "ips", "deviceID", "ipRanges"),
    "args": st.fixed_dictionaries({}, optional={"cni": keys("ips", "mac")}),
    "ipam": keys("type", "subnet", "rangeStart", "rangeEnd", "gateway", "ranges", "routes",
                 "dataDir", "resolvConf", "addresses", "dns"),
})
cni_args = st.one_of(st.just(""), st.sampled_from(["IgnoreUnknown=1;IP=10.1.0.9",
                                                   "MAC=zz", "IP=;", "IgnoreUnknown=maybe"]),
                     st.text(max_size=20))


def call_for(plugin: str, raw: dict[str, Any], args: str, command: str = "ADD") -> Call | None:
    """The Call a runtime would make, or None when the environment or the common keys are
    already refused (those paths have their own tests)."""
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "fuzz", "CNI_NETNS": "/run/netns/x",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": args}
    try:
        return Call(CmdArgs.from_env(env), NetConf.from_dict(
            {"cniVersion": "1.0.0", "name": "fuzz", "type": plugin, **raw}))
    except CNIError:
        return None


def ints_in(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [i for f in dataclasses.fields(value) if f.name != "raw"
                for i in ints_in(getattr(value, f.name))]
    if isinstance(value, dict):
        return [i for v in value.values() for i in ints_in(v)]
    if isinstance(value, list | tuple):
        return [i for v in value for i in ints_in(v)]
    return []


def parses_or_refuses(parse: Any, call: Call) -> None:
    """A parsed config holds only numbers the kernel takes (32 bits at most): a bigger
    one must be refused here, naming its key, not by netlink halfway through ADD."""
    try:
        conf = parse(call)
    except CNIError as e:
        assert e.code in (1, 2, 4, 6, 7), (e.code, e.msg)
        assert "internal error" not in e.msg
        return
    assert all(0 <= i < 2**32 for i in ints_in(conf)), conf


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("plugin", sorted(PARSERS))
def test_plugin_config_parser_returns_or_raises_a_cni_error(plugin: str) -> None:
    parse, plugin_keys = PARSERS[plugin]

    @FUZZ
    @given(raw=keys(*plugin_keys, *COMMON), extra=nested, args=cni_args)
    def prop(raw: dict[str, Any], extra: dict[str, Any], args: str) -> None:
        call = call_for(plugin, {**raw, **extra}, args)
        if call is not None:
            parses_or_refuses(parse, call)

    prop()


HOSTILE: tuple[Any, ...] = (None, True, False, 0, -1, 2**32, 2**64, 10**300, 1.5, -0.0, "",
                            "x" * 300, "../../etc", [], [None], {}, {"a": [1]})


@pytest.mark.parametrize("plugin", sorted(PARSERS))
def test_every_key_of_every_plugin_with_every_json_type(plugin: str) -> None:
    """The systematic half of the fuzzing: each key alone, with each hostile value."""
    parse, plugin_keys = PARSERS[plugin]
    for key in (*plugin_keys, *COMMON):
        for value in HOSTILE:
            call = call_for(plugin, {"master": "eth0", "deviceID": "0000:00:01.0",
                                     "device": "eth1", key: value}, "")
            if call is not None:
                parses_or_refuses(parse, call)


@FUZZ
@given(ipam=keys("type", "subnet", "rangeStart", "rangeEnd", "gateway", "ranges", "routes",
                 "dataDir", "resolvConf", "addresses", "dns"),
       extra=nested, ip_arg=st.one_of(st.none(), st.text(max_size=20)),
       gw_arg=st.one_of(st.none(), st.text(max_size=20)))
def test_ipam_config_parsers_return_or_raise_a_cni_error(
        ipam: dict[str, Any], extra: dict[str, Any], ip_arg: str | None,
        gw_arg: str | None) -> None:
    call = call_for("bridge", {**extra, "ipam": ipam}, "")
    if call is None:
        return
    for load in (lambda: host_local.load(call.conf, ip_arg),
                 lambda: static.addresses(call.conf, ip_arg, gw_arg)):
        try:
            load()
        except CNIError as e:
            assert e.code in (6, 7), (e.code, e.msg)


@FUZZ
@given(value=any_json)
def test_any_json_value_as_the_whole_config_is_refused_or_read(value: Any) -> None:
    try:
        NetConf.from_bytes(json.dumps(value).encode())
    except CNIError as e:
        assert e.code in (1, 6, 7), (e.code, e.msg)


@pytest.mark.parametrize(("text", "fragment"), [
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 64 levels"),
    (b'{"a":' * 65 + b"1" + b"}" * 65, "nested deeper than 64 levels"),
    (b'{"cniVersion": "1.0.0", "name": "\xff"}', "not valid UTF-8"),
    (b'{"mtu": NaN}', "not valid JSON"),
    (b'{"mtu": -Infinity}', "not valid JSON"),
    (b'{"mtu": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (b" " * (jsontext.MAX_BYTES + 1), "bytes accepted"),
])
def test_hostile_json_is_a_decoding_failure(text: bytes, fragment: str) -> None:
    with pytest.raises(CNIError) as info:
        NetConf.from_bytes(text)
    assert info.value.code == 6 and fragment in info.value.msg, info.value.msg


def test_nesting_up_to_the_limit_is_read() -> None:
    deep = "1"
    for _ in range(jsontext.MAX_DEPTH - 1):
        deep = f"[{deep}]"
    conf = NetConf.from_bytes(f'{{"cniVersion": "1.0.0", "name": "n", "type": "t", '
                              f'"x": {deep}}}')
    assert conf.raw["x"][0]


@pytest.mark.parametrize(("plugin", "key"), [
    ("sriov", "dataDir"), ("sriov", "sysfsRoot"), ("tuning", "dataDir"),
    ("host-device", "kernelpath"), ("host-device", "sysfsRoot")])
@pytest.mark.parametrize("value", ["relative/dir", "../../etc", ".", "dir\0/x"])
def test_relative_path_keys_are_refused(plugin: str, key: str, value: str) -> None:
    """A relative path would be read against whatever directory the daemon runs in."""
    parse, _ = PARSERS[plugin]
    call = call_for(plugin, {"deviceID": "0000:00:01.0", "device": "eth1", key: value}, "")
    assert call is not None
    with pytest.raises(CNIError) as info:
        parse(call)
    assert info.value.code == 7 and key in info.value.msg and "absolute" in info.value.msg


@pytest.mark.parametrize(("plugin", "key"), [
    ("sriov", "dataDir"), ("sriov", "sysfsRoot"), ("tuning", "dataDir"),
    ("host-device", "kernelpath"), ("host-device", "sysfsRoot")])
@pytest.mark.parametrize("value", ["/etc", "/etc/cron.d", "/var/lib/cni/../../../etc", "/"])
def test_path_keys_outside_the_nodes_roots_are_refused(plugin: str, key: str,
                                                       value: str) -> None:
    """The root daemon runs what a NAD says: a path only the NAD's author chose (not the
    node, through MULTIHOME_CONFIG_PATH_ROOTS) is never touched."""
    parse, _ = PARSERS[plugin]
    call = call_for(plugin, {"deviceID": "0000:00:01.0", "device": "eth1", key: value}, "")
    assert call is not None
    with pytest.raises(CNIError) as info:
        parse(call)
    assert info.value.code == 7 and key in info.value.msg
    assert "MULTIHOME_CONFIG_PATH_ROOTS" in info.value.msg
