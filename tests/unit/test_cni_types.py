"""CNI environment and config validation, versions and the request helpers (args.py)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from multihome.cni import version as ver
from multihome.cni.args import (
    ip_requests,
    load_cni_args,
    parse_mac,
    requested_ips,
    requested_mac,
)
from multihome.cni.errors import (
    DecodingFailure,
    IncompatibleVersion,
    InvalidConfig,
    InvalidEnvironment,
)
from multihome.cni.skel import Call
from multihome.cni.types import CmdArgs, NetConf, validate_ifname

BASE = {"CNI_CONTAINERID": "abc123", "CNI_NETNS": "/var/run/netns/x", "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin"}


def env(command: str, **over: str) -> dict[str, str]:
    out = {"CNI_COMMAND": command, **BASE}
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


# -- environment ---------------------------------------------------------------

@pytest.mark.parametrize("command", ["ADD", "CHECK"])
@pytest.mark.parametrize("missing", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])
def test_add_and_check_need_cid_netns_ifname(command: str, missing: str) -> None:
    e = env(command)
    del e[missing]
    with pytest.raises(InvalidEnvironment, match=missing) as info:
        CmdArgs.from_env(e)
    assert info.value.code == 4


def test_del_allows_empty_netns_but_needs_the_rest() -> None:
    e = env("DEL")
    del e["CNI_NETNS"]
    cmd = CmdArgs.from_env(e)
    assert cmd.netns == "" and cmd.container_id == "abc123"
    for missing in ("CNI_CONTAINERID", "CNI_IFNAME"):
        e2 = dict(e)
        del e2[missing]
        with pytest.raises(InvalidEnvironment, match=missing):
            CmdArgs.from_env(e2)


def test_gc_needs_path_version_and_status_need_only_command() -> None:
    with pytest.raises(InvalidEnvironment, match="CNI_PATH"):
        CmdArgs.from_env({"CNI_COMMAND": "GC"})
    assert CmdArgs.from_env({"CNI_COMMAND": "GC", "CNI_PATH": "/a:/b"}).path == ("/a", "/b")
    assert CmdArgs.from_env({"CNI_COMMAND": "VERSION"}).command == "VERSION"
    assert CmdArgs.from_env({"CNI_COMMAND": "STATUS"}).command == "STATUS"


@pytest.mark.parametrize("command", ["", "add", "FOO", "DELETE"])
def test_missing_or_unknown_command_is_code_4(command: str) -> None:
    with pytest.raises(InvalidEnvironment) as info:
        CmdArgs.from_env({"CNI_COMMAND": command} if command else {})
    assert info.value.code == 4


@pytest.mark.parametrize("cid", ["-abc", ".x", "_x", "a b", "a/b", "abc\n", "ä", "a:b", "a;b"])
def test_bad_container_ids(cid: str) -> None:
    with pytest.raises(InvalidEnvironment, match="CNI_CONTAINERID"):
        CmdArgs.from_env(env("ADD", CNI_CONTAINERID=cid))


@pytest.mark.parametrize("cid", ["a", "0", "abc-DEF_1.2", "cnitool-77383ca0a0715733ca6f"])
def test_good_container_ids(cid: str) -> None:
    assert CmdArgs.from_env(env("ADD", CNI_CONTAINERID=cid)).container_id == cid


@pytest.mark.parametrize("name", ["a" * 16, "a/b", "a b", "a\tb", "a:b", ".", "..", "é" * 8,
                                  "eth0\n"])
def test_bad_ifnames(name: str) -> None:
    with pytest.raises(InvalidEnvironment):
        validate_ifname(name)
    with pytest.raises(InvalidEnvironment):
        CmdArgs.from_env(env("ADD", CNI_IFNAME=name))


@pytest.mark.parametrize("name", ["a" * 15, "eth0", "net1", "pod1234abcd", "veth.1-x_y", "é" * 7])
def test_good_ifnames(name: str) -> None:
    assert validate_ifname(name) == name


@pytest.mark.parametrize("args", ["FOO", "=x", "A=1;B", ";;C"])
def test_malformed_cni_args_are_code_4(args: str) -> None:
    with pytest.raises(InvalidEnvironment, match="CNI_ARGS"):
        CmdArgs.from_env(env("ADD", CNI_ARGS=args))


def test_cni_args_pairs_and_lookup() -> None:
    cmd = CmdArgs.from_env(env("ADD", CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.0.0.2;"))
    assert cmd.args_pairs == [("IgnoreUnknown", "1"), ("K8S_POD_NAME", "p"), ("IP", "10.0.0.2")]
    assert cmd.arg("IP") == "10.0.0.2" and cmd.arg("MAC") is None


def test_to_env_sets_all_six_variables_even_empty() -> None:
    out = CmdArgs("DEL", "cid", "", "eth0", "", ("/a", "/b")).to_env()
    assert out == {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "cid", "CNI_NETNS": "",
                   "CNI_ARGS": "", "CNI_IFNAME": "eth0", "CNI_PATH": "/a:/b"}


# -- NetConf -------------------------------------------------------------------

def test_netconf_fields() -> None:
    conf = NetConf.from_bytes(b'{"cniVersion":"1.0.0","name":"n","type":"bridge",'
                              b'"ipam":{"type":"host-local"},"runtimeConfig":{"mac":"x"},'
                              b'"args":{"cni":{"ips":["10.0.0.1"]}}}')
    assert (conf.cni_version, conf.name, conf.type) == ("1.0.0", "n", "bridge")
    assert conf.ipam == {"type": "host-local"}
    assert conf.runtime_config == {"mac": "x"}
    assert conf.cni_args == {"ips": ["10.0.0.1"]}


def test_netconf_without_version_is_010() -> None:
    assert NetConf.from_dict({"name": "n", "type": "t"}).cni_version == "0.1.0"


@pytest.mark.parametrize(("raw", "err"), [
    (b"not json", DecodingFailure),
    (b"[1]", DecodingFailure),
    (b'{"cniVersion":"1.0.0","type":"t"}', InvalidConfig),
    (b'{"cniVersion":"1.0.0","name":"-bad","type":"t"}', InvalidConfig),
    (b'{"cniVersion":"1.0.0","name":"n"}', InvalidConfig),
    (b'{"cniVersion":"1.0","name":"n","type":"t"}', InvalidConfig),
    (b'{"cniVersion":1,"name":"n","type":"t"}', InvalidConfig),
    (b'{"cniVersion":"1.0.0","name":"n","type":"t","ipam":[]}', InvalidConfig),
    (b'{"cniVersion":"1.0.0","name":"n","type":"t","runtimeConfig":1}', InvalidConfig),
    (b'{"cniVersion":"1.0.0","name":"n","type":"t","prevResult":{"ips":[{"address":"x"}]}}',
     DecodingFailure),
])
def test_netconf_errors(raw: bytes, err: type[Exception]) -> None:
    with pytest.raises(err):
        NetConf.from_bytes(raw)


def test_prev_result_is_read_in_the_config_version() -> None:
    conf = NetConf.from_dict({"cniVersion": "0.3.1", "name": "n", "type": "t", "prevResult": {
        "ips": [{"version": "4", "address": "10.1.0.2/24"}]}})
    assert conf.prev_result is not None
    assert str(conf.prev_result.ips[0].address) == "10.1.0.2/24"


# -- versions ------------------------------------------------------------------

def test_version_parse_and_compare() -> None:
    assert ver.parse("0.3.1") == (0, 3, 1)
    assert ver.at_least("1.1.0", "1.0.0") and not ver.at_least("0.3.1", "0.4.0")
    for bad in ("1", "1.0", "v1.0.0", "1.0.0-rc1", ""):
        with pytest.raises(InvalidConfig):
            ver.parse(bad)
    with pytest.raises(IncompatibleVersion) as info:
        ver.require_supported("2.0.0")
    assert info.value.code == 1


@pytest.mark.parametrize(("candidates", "expected"), [
    (["0.3.1", "1.0.0", "0.4.0"], "1.0.0"),
    (["1.1.0", "9.9.9"], "1.1.0"),
    (["0.2.0", "0.10.0"], "0.2.0"),
    (["9.9.9"], None),
    ([], None),
    (["junk", 3, "0.4.0"], "0.4.0"),
])
def test_pick_highest_supported(candidates: list[Any], expected: str | None) -> None:
    assert ver.pick(candidates) == expected


# -- args.py: CNI_ARGS, args.cni, runtimeConfig --------------------------------

def call(conf: dict[str, Any] | None = None, cni_args: str = "") -> Call:
    raw = {"cniVersion": "1.0.0", "name": "n", "type": "t", **(conf or {})}
    return Call(CmdArgs("ADD", "c1", "/ns", "eth0", cni_args, ()), NetConf.from_dict(raw))


def test_load_cni_args_unknown_keys_need_ignore_unknown() -> None:
    cmd = CmdArgs("ADD", args="K8S_POD_NAME=p;IP=10.0.0.5")
    with pytest.raises(InvalidEnvironment, match="K8S_POD_NAME") as info:
        load_cni_args(cmd, ["IP"])
    assert info.value.code == 4
    for truth in ("1", "true", "True", "TRUE"):
        cmd = CmdArgs("ADD", args=f"IgnoreUnknown={truth};K8S_POD_NAME=p;IP=10.0.0.5")
        assert load_cni_args(cmd, ["IP"])["IP"] == "10.0.0.5"
    cmd = CmdArgs("ADD", args="IgnoreUnknown=0;K8S_POD_NAME=p")
    with pytest.raises(InvalidEnvironment):
        load_cni_args(cmd, ["IP"])
    cmd = CmdArgs("ADD", args="IgnoreUnknown=yes")
    with pytest.raises(InvalidEnvironment, match="IgnoreUnknown"):
        load_cni_args(cmd, ["IP"])


@pytest.mark.parametrize(("text", "norm"), [
    ("0A:58:0a:f4:00:05", "0a:58:0a:f4:00:05"),
    ("02-00-00-00-00-01", "02:00:00:00:00:01"),
    ("0200.0000.00ff", "02:00:00:00:00:ff"),
])
def test_parse_mac_forms(text: str, norm: str) -> None:
    assert parse_mac(text, "x") == norm


@pytest.mark.parametrize("bad", ["", "zz:00:00:00:00:00", "02:00:00:00:00", "01:00:5e:00:00:01",
                                 "02:00:00:00:00:00:00", 5, None, "02:00:00:00:00:0g"])
def test_parse_mac_rejects(bad: Any) -> None:
    with pytest.raises(InvalidConfig) as info:
        parse_mac(bad, "runtimeConfig.mac")
    assert info.value.code == 7


def test_requested_mac_precedence() -> None:
    env_mac, args_mac, rc_mac = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
    assert requested_mac(call()) is None
    assert requested_mac(call(cni_args=f"MAC={env_mac}")) == env_mac
    assert requested_mac(call({"args": {"cni": {"mac": args_mac}}},
                              cni_args=f"MAC={env_mac}")) == args_mac
    assert requested_mac(call({"args": {"cni": {"mac": args_mac}},
                               "runtimeConfig": {"mac": rc_mac}},
                              cni_args=f"MAC={env_mac}")) == rc_mac


def test_requested_mac_errors() -> None:
    with pytest.raises(InvalidConfig, match="CNI_ARGS MAC"):
        requested_mac(call(cni_args="MAC=nope"))
    with pytest.raises(InvalidConfig, match=r"runtimeConfig\.mac"):
        requested_mac(call({"runtimeConfig": {"mac": "01:00:00:00:00:00"}}))
    # CNI_ARGS is validated even when a higher-precedence source wins, like the Go plugins
    with pytest.raises(InvalidEnvironment, match="FOO"):
        requested_mac(call({"runtimeConfig": {"mac": "02:00:00:00:00:01"}}, cni_args="FOO=1"))


def test_requested_ips_precedence_and_merge() -> None:
    c = call({"args": {"cni": {"ips": ["10.0.0.2/24"]}},
              "runtimeConfig": {"ips": ["10.0.0.3", "fd00::3/64"]}},
             cni_args="IP=10.0.0.1,10.0.0.9")
    want_rc = [ipaddress.ip_interface("10.0.0.3"), ipaddress.ip_interface("fd00::3/64")]
    assert requested_ips(c) == want_rc
    reqs = ip_requests(c)
    assert [str(i) for i in reqs.cni_args] == ["10.0.0.1/32", "10.0.0.9/32"]
    assert [str(i) for i in reqs.merged()] == ["10.0.0.1/32", "10.0.0.9/32", "10.0.0.2/24",
                                               "10.0.0.3/32", "fd00::3/64"]
    assert requested_ips(call({"args": {"cni": {"ips": ["10.0.0.2/24"]}}}, "IP=10.0.0.1")) == [
        ipaddress.ip_interface("10.0.0.2/24")]
    assert requested_ips(call(cni_args="IP=10.0.0.1")) == [ipaddress.ip_interface("10.0.0.1")]
    assert requested_ips(call()) == []


@pytest.mark.parametrize(("conf", "args", "where"), [
    ({"runtimeConfig": {"ips": "10.0.0.1"}}, "", "runtimeConfig.ips"),
    ({"runtimeConfig": {"ips": ["300.0.0.1"]}}, "", "runtimeConfig.ips"),
    ({"args": {"cni": {"ips": [7]}}}, "", "args.cni.ips"),
    ({}, "IP=10.0.0.256", "CNI_ARGS IP"),
])
def test_requested_ips_errors(conf: dict[str, Any], args: str, where: str) -> None:
    with pytest.raises(InvalidConfig, match=where):
        requested_ips(call(conf, args))


def test_requested_ips_require_prefix_for_static() -> None:
    with pytest.raises(InvalidConfig, match="CIDR"):
        requested_ips(call(cni_args="IP=10.0.0.1"), require_prefix=True)
    assert requested_ips(call(cni_args="IP=10.0.0.1/24"), require_prefix=True) == [
        ipaddress.ip_interface("10.0.0.1/24")]


def test_requested_ips_unknown_cni_args() -> None:
    with pytest.raises(InvalidEnvironment, match="MAC"):
        requested_ips(call(cni_args="MAC=02:00:00:00:00:01"))
    assert requested_ips(call(cni_args="IgnoreUnknown=true;MAC=x;IP=10.9.0.1")) == [
        ipaddress.ip_interface("10.9.0.1")]
