"""static IPAM through the skel: config addresses, CNI_ARGS/args/runtimeConfig overrides,
routes, DNS, validation and CHECK."""

from __future__ import annotations

import json
from typing import Any

import pytest

from multihome.cni import skel
from multihome.ipam import static


def run(command: str, conf: dict[str, Any], args: str = "") -> tuple[int, Any]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/none",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}
    if args:
        env["CNI_ARGS"] = args
    rc, out = skel.dispatch(static, env, json.dumps(conf).encode())
    return rc, json.loads(out) if out else None


def make_conf(version: str = "1.0.0", **ipam: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "net1", "type": "bridge",
            "ipam": {"type": "static", **ipam}}


def test_full_config() -> None:
    conf = make_conf(
        addresses=[{"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
                   {"address": "3ffe:ffff:0:01ff::1/64"}],
        routes=[{"dst": "0.0.0.0/0"}, {"dst": "10.0.0.0/8", "gw": "10.10.0.254"}],
        dns={"nameservers": ["8.8.8.8"], "domain": "example.com", "search": ["a"]},
    )
    rc, res = run("ADD", conf)
    assert rc == 0
    assert res == {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
                {"address": "3ffe:ffff:0:1ff::1/64"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.0.0.0/8", "gw": "10.10.0.254"}],
        "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com", "search": ["a"]},
    }
    _, res = run("ADD", {**conf, "cniVersion": "0.3.1"})
    assert res["ips"][1] == {"version": "6", "address": "3ffe:ffff:0:1ff::1/64"}


def test_no_addresses_is_an_empty_result() -> None:
    assert run("ADD", make_conf()) == (0, {"cniVersion": "1.0.0", "dns": {}})


def test_cni_args_ip_and_gateway() -> None:
    rc, res = run("ADD", make_conf(addresses=[{"address": "10.10.0.1/24"}]),
                  "IP=10.10.0.7/24,fd00::7/64;GATEWAY=10.10.0.1,fd00::1")
    assert rc == 0
    # GATEWAY applies to the CNI_ARGS addresses, as in the reference.
    assert res["ips"] == [{"address": "10.10.0.1/24"},
                          {"address": "10.10.0.7/24", "gateway": "10.10.0.1"},
                          {"address": "fd00::7/64", "gateway": "fd00::1"}]


def test_args_and_runtime_ips_replace_addresses() -> None:
    conf = make_conf(addresses=[{"address": "10.10.0.1/24"}])
    conf["args"] = {"cni": {"ips": ["10.10.0.5/24"]}}
    assert run("ADD", conf)[1]["ips"] == [{"address": "10.10.0.5/24"}]
    conf["runtimeConfig"] = {"ips": ["10.10.0.8/24", "fd00::8/64"]}
    assert run("ADD", conf, "IP=10.10.0.9/24")[1]["ips"] == [{"address": "10.10.0.8/24"},
                                                             {"address": "fd00::8/64"}]


@pytest.mark.parametrize(
    ("conf", "args", "fragment"),
    [
        (make_conf(addresses=[{"address": "10.10.0.1"}]), "", "CIDR notation"),
        (make_conf(addresses=[{"address": "10.10.0.300/24"}]), "", "not a valid CIDR"),
        (make_conf(addresses=[{"address": "10.10.0.1/24", "gateway": "bad"}]), "", "'gateway'"),
        (make_conf(addresses=[{"address": "10.10.0.1/24", "gateway": "fd00::1"}]), "",
         "same IP family"),
        (make_conf(addresses=[{"gateway": "10.0.0.1"}]), "", "'address'"),
        (make_conf(addresses="10.10.0.1/24"), "", "'addresses' must be a list"),
        (make_conf(addresses=["10.10.0.1/24"]), "", "entry 0 must be an object"),
        (make_conf(routes=[{"dst": "nowhere"}]), "", "'dst'"),
        (make_conf(dns={"nameservers": "8.8.8.8"}), "", "'nameservers' must be a list"),
        (make_conf(dns=[]), "", "'dns' must be an object"),
        (make_conf(), "IP=10.0.0.1", "CNI_ARGS IP entry"),
        (make_conf(), "IP=10.0.0.1/24;GATEWAY=bad", "CNI_ARGS GATEWAY entry"),
        ({**make_conf(), "runtimeConfig": {"ips": ["10.0.0.1"]}}, "", "runtimeConfig 'ips'"),
        ({**make_conf(), "args": {"cni": {"ips": "10.0.0.1/24"}}}, "", "args.cni 'ips'"),
        (make_conf("0.2.0", addresses=[{"address": "10.0.0.1/24"}, {"address": "10.0.1.1/24"}]),
         "", "more than 1 address per family"),
        ({"cniVersion": "1.0.0", "name": "n", "type": "x"}, "", "'ipam'"),
    ],
)
def test_invalid(conf: dict[str, Any], args: str, fragment: str) -> None:
    rc, err = run("ADD", conf, args)
    assert (rc, err["code"]) == (1, 7), err
    assert fragment in err["msg"]


def test_del_never_fails() -> None:
    assert run("DEL", make_conf(addresses=[{"address": "bad"}])) == (0, None)


def test_check_against_prev_result() -> None:
    conf = make_conf("1.0.0", addresses=[{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}])
    rc, err = run("CHECK", conf)
    assert (rc, err["code"]) == (1, 7) and "prevResult" in err["msg"]
    _, res = run("ADD", conf)
    assert run("CHECK", {**conf, "prevResult": res}) == (0, None)
    other = {"cniVersion": "1.0.0", "ips": [{"address": "10.10.0.2/24"}]}
    rc, err = run("CHECK", {**conf, "prevResult": other})
    assert rc == 1 and "10.10.0.1/24 is missing" in err["msg"]
    wrong_gw = {"cniVersion": "1.0.0",
                "ips": [{"address": "10.10.0.1/24", "gateway": "10.10.0.1"}]}
    rc, err = run("CHECK", {**conf, "prevResult": wrong_gw})
    assert rc == 1 and "gateway" in err["msg"]


def test_status_and_gc() -> None:
    conf = make_conf("1.1.0", addresses=[{"address": "10.10.0.1/24"}])
    assert run("STATUS", conf) == (0, None)
    assert run("GC", {**conf, "cni.dev/valid-attachments": []}) == (0, None)
