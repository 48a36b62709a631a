"""dhcp IPAM without a server: the reference's configuration keys, errors for bad ones,
and a lease turned into a CNI result (routes from options 121 / 33 / the router)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import multihome.ipam.dhcp as dhcp_ipam
from multihome.cni.skel import Call, dispatch
from multihome.cni.types import CmdArgs, NetConf
from multihome.ipam import dhcp_leases
from multihome.net.dhcp import DhcpError, LeaseData


def _conf(**ipam: Any) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "dhcpnet", "type": "macvlan",
            "ipam": {"type": "dhcp", **ipam}}


def _run(command: str, conf: dict[str, Any], args: str = "") -> tuple[int, Any]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_IFNAME": "net1",
           "CNI_NETNS": "/var/run/netns/none", "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": args}
    rc, out = dispatch(dhcp_ipam, env, json.dumps(conf).encode())
    return rc, json.loads(out) if out else None


def _parse(args: str = "", **ipam: Any) -> dhcp_ipam.DhcpConfig:
    cmd = CmdArgs("ADD", "c1", "/var/run/netns/none", "net1", args)
    return dhcp_ipam.parse(Call(cmd, NetConf.from_bytes(json.dumps(_conf(**ipam)).encode())))


@pytest.fixture(autouse=True)
def _no_daemon() -> None:
    dhcp_leases.install(None)


def test_add_without_the_daemon_is_try_again_later_naming_the_daemon() -> None:
    # daemonSocketPath (the reference daemon's socket) is accepted and never opened
    rc, out = _run("ADD", _conf(daemonSocketPath="/run/cni/dhcp.sock"))
    assert rc == 1 and out["code"] == 11
    assert "multihome daemon" in out["msg"]


def test_status_without_the_daemon_is_not_available_and_del_succeeds() -> None:
    assert _run("STATUS", _conf())[1]["code"] == 50
    assert _run("DEL", _conf()) == (0, None)


@pytest.mark.parametrize("ipam, words", [
    ({"request": [{"option": "no-such-option"}]}, "unknown"),
    ({"request": [{"option": "300"}]}, "1-254"),
    ({"request": [{"option": 0}]}, "1-254"),
    ({"request": [{"option": ["routers"]}]}, "name or number"),
    ({"request": {"option": "routers"}}, "list of objects"),
    ({"request": [{"skipDefault": "yes"}]}, "boolean"),
    ({"provide": [{"option": "routers", "value": "x"}]}, "cannot be provided"),
    ({"provide": [{"option": "routes", "value": "x"}]}, "cannot be provided"),
    ({"provide": [{"option": "host-name", "value": 7}]}, "string"),
    ({"provide": [{"option": "host-name", "value": "h" * 256}]}, "longer than 255"),
    ({"provide": ["host-name"]}, "list of objects"),
    ({"priority": -1}, "non-negative"),
    ({"priority": "10"}, "non-negative"),
    ({"priority": True}, "non-negative"),
    ({"daemonSocketPath": 5}, "string"),
])
def test_bad_config_is_code_7_naming_the_key(ipam: dict[str, Any], words: str) -> None:
    rc, out = _run("ADD", _conf(**ipam))
    assert rc == 1 and out["code"] == 7, out
    assert words in out["msg"]


def test_request_has_the_reference_defaults_the_asked_options_and_the_timers() -> None:
    assert _parse().request == (3, 1, 51, 58, 59)
    conf = _parse(request=[{"option": "classless_static_routes"}, {"option": "42"}])
    assert conf.request == (3, 1, 121, 42, 51, 58, 59)
    assert _parse(request=[{"skipDefault": True}, {"option": "subnet-mask"}]).request == \
        (1, 51, 58, 59)
    assert _parse(request=[{"option": "routes"}]).request == (3, 1, 121, 33, 51, 58, 59)


def test_provide_takes_a_value_or_a_cni_arg() -> None:
    conf = _parse("IgnoreUnknown=1;K8S_POD_NAME=web-1",
                  provide=[{"option": "host-name", "fromArg": "K8S_POD_NAME"},
                           {"option": "dhcp-client-identifier", "value": "my-id"},
                           {"option": "60", "value": "vendor"}])
    assert conf.provide == {12: "web-1", 61: "my-id", 60: "vendor"}
    # fromArg naming an absent key keeps the value (none here: nothing is sent)
    assert _parse(provide=[{"option": "hostname", "fromArg": "K8S_POD_NAME"}]).provide == {}


def _lease(**options: Any) -> LeaseData:
    return LeaseData({"yiaddr": "10.71.0.57", "options": {"subnet_mask": "255.255.255.0",
                                                          "router": ["10.71.0.1"], **options}},
                     "02:00:00:00:00:01", 0.0)


def _routes(lease: LeaseData, priority: int = 0) -> list[dict[str, Any]]:
    result = dhcp_ipam.result_of(lease, dhcp_ipam.DhcpConfig((), {}, priority), "1.1.0")
    routes: list[dict[str, Any]] = result.to_dict("1.1.0")["routes"]
    return routes


def test_result_is_the_address_the_gateway_and_a_default_route() -> None:
    result = dhcp_ipam.result_of(_lease(), dhcp_ipam.DhcpConfig((), {}, 0), "1.0.0")
    assert result.to_dict("1.0.0")["ips"] == [{"address": "10.71.0.57/24",
                                               "gateway": "10.71.0.1"}]
    assert _routes(_lease()) == [{"dst": "0.0.0.0/0", "gw": "10.71.0.1"}]
    assert _routes(_lease(), priority=7) == [{"dst": "0.0.0.0/0", "gw": "10.71.0.1",
                                              "priority": 7}]


def test_static_routes_are_classful_and_come_before_the_default_route() -> None:
    static = [10, 1, 0, 0, 10, 71, 0, 2, 172, 16, 0, 0, 10, 71, 0, 3]
    assert _routes(_lease(static_route=static)) == [
        {"dst": "10.0.0.0/8", "gw": "10.71.0.2"}, {"dst": "172.16.0.0/16", "gw": "10.71.0.3"},
        {"dst": "0.0.0.0/0", "gw": "10.71.0.1"}]


def test_classless_routes_replace_static_routes_and_the_router() -> None:
    classless = [24, 192, 168, 5, 10, 71, 0, 2,  # 192.168.5.0/24 via .2
                 0, 10, 71, 0, 1,  # default via .1
                 32, 10, 9, 9, 9, 0, 0, 0, 0]  # on-link host route
    assert _routes(_lease(classless_static_route=classless,
                          static_route=[10, 1, 0, 0, 10, 71, 0, 2])) == [
        {"dst": "192.168.5.0/24", "gw": "10.71.0.2"}, {"dst": "0.0.0.0/0", "gw": "10.71.0.1"},
        {"dst": "10.9.9.9/32", "gw": "0.0.0.0", "scope": 253}]


def test_a_lease_without_a_subnet_mask_or_with_bad_routes_is_an_error() -> None:
    no_mask = LeaseData({"yiaddr": "10.71.0.57", "options": {}}, "", 0.0)
    with pytest.raises(DhcpError, match="subnet mask"):
        dhcp_ipam.result_of(no_mask, dhcp_ipam.DhcpConfig((), {}, 0), "1.0.0")
    with pytest.raises(DhcpError, match="classless"):
        _routes(_lease(classless_static_route=[33, 1, 2, 3, 4, 5, 6, 7, 8, 9]))


def test_lease_key_is_the_reference_client_id_and_a_digest_file_name() -> None:
    key = dhcp_leases.LeaseKey("c1", "../../etc", "net1")
    assert key.client_id == "c1/../../etc/net1"
    assert "/" not in key.file_name and key.file_name.endswith(".json")
    assert len(dhcp_leases.LeaseKey("c" * 300, "n", "i").client_id) == 254


def test_add_with_a_netns_path_that_is_no_namespace_keeps_that_error(tmp_path: Any) -> None:
    not_a_netns = tmp_path / "netns"
    not_a_netns.write_text("")
    dhcp_leases.install(dhcp_leases.LeaseManager(str(tmp_path / "state")))
    try:
        env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "net1",
               "CNI_NETNS": str(not_a_netns), "CNI_PATH": "/usr/lib/cni"}
        rc, out = dispatch(dhcp_ipam, env, json.dumps(_conf()).encode())
    finally:
        dhcp_leases.install(None)
    error = json.loads(out)
    assert rc == 1 and error["code"] != 11 and "not a network namespace" in error["msg"]
    assert not (tmp_path / "state" / "dhcp").exists()  # nothing recorded
