"""Results in every spec version and the conversions between them."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from multihome.cni import version as ver
from multihome.cni.errors import CNIError, IncompatibleVersion
from multihome.cni.result import Result

LEGACY = ("0.1.0", "0.2.0")
V03 = ("0.3.0", "0.3.1", "0.4.0")
V1 = ("1.0.0", "1.1.0")

FULL_11: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "interfaces": [
        {"name": "br0", "mac": "02:00:00:00:00:01", "mtu": 1400},
        {"name": "eth0", "mac": "02:00:00:00:00:02", "sandbox": "/var/run/netns/x",
         "socketPath": "/run/s.sock", "pciID": "0000:00:01.0"},
    ],
    "ips": [
        {"interface": 1, "address": "10.1.0.2/24", "gateway": "10.1.0.1"},
        {"interface": 1, "address": "10.1.0.3/24"},
        {"interface": 1, "address": "fd00::2/64", "gateway": "fd00::1"},
        {"interface": 1, "address": "fd00::3/64"},
    ],
    "routes": [
        {"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1300, "advmss": 1200, "priority": 5,
         "table": 100, "scope": 0},
        {"dst": "::/0"},
    ],
    "dns": {"nameservers": ["10.1.0.53"], "domain": "x.local", "search": ["x.local"],
            "options": ["ndots:2"]},
}


def test_11_round_trip_is_identity() -> None:
    assert Result.from_dict(FULL_11).to_dict() == FULL_11


def test_down_to_10_drops_11_fields_only() -> None:
    out = Result.from_dict(FULL_11).to_dict("1.0.0")
    assert out["cniVersion"] == "1.0.0"
    assert out["interfaces"][0] == {"name": "br0", "mac": "02:00:00:00:00:01"}
    assert "socketPath" not in out["interfaces"][1] and "pciID" not in out["interfaces"][1]
    assert out["routes"][0] == {"dst": "0.0.0.0/0", "gw": "10.1.0.1"}
    assert all("version" not in ip for ip in out["ips"])
    assert out["dns"] == FULL_11["dns"]


@pytest.mark.parametrize("v", V03)
def test_down_to_03x_04_adds_ip_version(v: str) -> None:
    out = Result.from_dict(FULL_11).to_dict(v)
    assert out["cniVersion"] == v
    assert [ip["version"] for ip in out["ips"]] == ["4", "4", "6", "6"]
    assert out["ips"][0] == {"version": "4", "interface": 1, "address": "10.1.0.2/24",
                             "gateway": "10.1.0.1"}
    assert len(out["interfaces"]) == 2


@pytest.mark.parametrize("v", LEGACY)
def test_down_to_legacy_keeps_first_v4_and_v6(v: str) -> None:
    out = Result.from_dict(FULL_11).to_dict(v)
    assert out == {
        "cniVersion": v,
        "ip4": {"ip": "10.1.0.2/24", "gateway": "10.1.0.1",
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]},
        "ip6": {"ip": "fd00::2/64", "gateway": "fd00::1", "routes": [{"dst": "::/0"}]},
        "dns": FULL_11["dns"],
    }


def test_legacy_v6_only_has_no_ip4() -> None:
    r = Result.from_dict({"cniVersion": "1.0.0", "ips": [{"address": "fd00::5/64"}],
                          "routes": [{"dst": "10.0.0.0/8"}, {"dst": "fd01::/64"}]})
    out = r.to_dict("0.2.0")
    assert "ip4" not in out
    # a v4 route has nowhere to go without ip4, like the Go conversion
    assert out["ip6"] == {"ip": "fd00::5/64", "routes": [{"dst": "fd01::/64"}]}


@pytest.mark.parametrize("v", LEGACY)
def test_legacy_without_any_ip_is_impossible(v: str) -> None:
    r = Result.from_dict({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}]})
    with pytest.raises(IncompatibleVersion, match="no IP address") as info:
        r.to_dict(v)
    assert info.value.code == 1
    with pytest.raises(IncompatibleVersion):
        r.convert(v)


@pytest.mark.parametrize("v", ["0.5.0", "2.0.0", "1.2.0"])
def test_unknown_target_version_is_code_1(v: str) -> None:
    with pytest.raises(IncompatibleVersion) as info:
        Result.from_dict(FULL_11).to_dict(v)
    assert info.value.code == 1


LEGACY_IN: dict[str, Any] = {
    "ip4": {"ip": "10.2.0.5/16", "gateway": "10.2.0.1",
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.2.0.254"}]},
    "ip6": {"ip": "fd02::5/64", "routes": [{"dst": "::/0", "gw": "fd02::1"}]},
    "dns": {"nameservers": ["8.8.8.8"]},
}


@pytest.mark.parametrize("src", LEGACY)
@pytest.mark.parametrize("dst", V03 + V1)
def test_up_from_legacy(src: str, dst: str) -> None:
    out = Result.from_dict({"cniVersion": src, **LEGACY_IN}).to_dict(dst)
    assert out["cniVersion"] == dst
    assert "interfaces" not in out
    addrs = [(ip["address"], ip.get("gateway")) for ip in out["ips"]]
    assert addrs == [("10.2.0.5/16", "10.2.0.1"), ("fd02::5/64", None)]
    assert all(("version" in ip) == (dst in V03) for ip in out["ips"])
    assert all("interface" not in ip for ip in out["ips"])
    assert out["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.2.0.254"},
                             {"dst": "::/0", "gw": "fd02::1"}]
    assert out["dns"] == {"nameservers": ["8.8.8.8"]}


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(ver.ALL_VERSIONS, repeat=2)))
def test_every_pair_converts_and_keeps_the_first_addresses(src: str, dst: str) -> None:
    base = Result.from_dict(FULL_11).to_dict(src)
    r = Result.from_dict(base)
    assert r.cni_version == src
    converted = r.convert(dst)
    assert converted.cni_version == dst
    assert converted.to_dict()["cniVersion"] == dst
    firsts = {ip.family: str(ip.address) for ip in reversed(converted.ips)}
    assert firsts == {4: "10.1.0.2/24", 6: "fd00::2/64"}
    # and back up again never loses what the lower of the two versions can hold
    low = min(src, dst, key=ver.parse)
    assert converted.convert("1.1.0").to_dict(low) == Result.from_dict(FULL_11).to_dict(low)


def test_result_without_version_is_010() -> None:
    r = Result.from_dict({"ip4": {"ip": "10.0.0.1/8"}})
    assert r.cni_version == "0.1.0" and str(r.ips[0].address) == "10.0.0.1/8"


@pytest.mark.parametrize("bad", [
    [],
    {"cniVersion": 1},
    {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1"}]},
    {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/24", "gateway": "x"}]},
    {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/24", "interface": 2}],
     "interfaces": [{"name": "a"}]},
    {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/24", "interface": -1}]},
    {"cniVersion": "1.0.0", "interfaces": [{"mac": "x"}]},
    {"cniVersion": "1.0.0", "interfaces": {"name": "a"}},
    {"cniVersion": "1.0.0", "routes": [{"dst": "nope"}]},
    {"cniVersion": "1.0.0", "dns": []},
    {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.1"}},
    {"cniVersion": "0.2.0", "ip4": []},
])
def test_malformed_results_are_decoding_failures(bad: Any) -> None:
    with pytest.raises(CNIError) as info:
        Result.from_dict(bad)
    assert info.value.code in (6, 7)


def test_unsupported_result_version() -> None:
    with pytest.raises(IncompatibleVersion):
        Result.from_dict({"cniVersion": "7.0.0"})
