"""Range and range-set parsing, validation and the round-robin order of host-local."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from multihome.cni.errors import InvalidConfig
from multihome.ipam.ranges import (
    RangeSet,
    check_no_overlap,
    parse_range,
    parse_range_set,
)


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_defaults_v4() -> None:
    r = parse_range({"subnet": "10.1.2.0/24"}, "r")
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.1.2.1", "10.1.2.254", "10.1.2.1")
    assert str(r) == "10.1.2.0/24"


def test_defaults_v6_keep_last_address() -> None:
    r = parse_range({"subnet": "fd00:1::/125"}, "r")
    assert (str(r.start), str(r.end), str(r.gateway)) == ("fd00:1::1", "fd00:1::7", "fd00:1::1")


def test_explicit_window_and_gateway() -> None:
    r = parse_range({"subnet": "10.1.0.0/16", "rangeStart": "10.1.1.10",
                     "rangeEnd": "10.1.1.20", "gateway": "10.1.0.254"}, "r")
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.1.1.10", "10.1.1.20", "10.1.0.254")
    assert str(r) == "10.1.0.0/16 (10.1.1.10-10.1.1.20)"
    assert r.contains(ip("10.1.1.15"))
    assert not r.contains(ip("10.1.1.21"))
    assert not r.contains(ip("fd00::1"))


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"subnet": "10.1.2.0/31"}, "too small"),
        ({"subnet": "fd00::/127"}, "too small"),
        ({"subnet": "10.1.2.5/24"}, "host bits set"),
        ({"subnet": "bogus"}, "not a valid CIDR"),
        ({"subnet": "10.1.2.0"}, "prefix length is missing"),
        ({"subnet": 7}, "'subnet' must be a string"),
        ({}, "missing the 'subnet' key"),
        ({"subnet": "10.1.2.0/24", "rangeStart": "10.1.3.1"},
         "'rangeStart' 10.1.3.1 is not inside"),
        ({"subnet": "10.1.2.0/24", "rangeEnd": "fd00::1"}, "'rangeEnd' fd00::1 is not the same"),
        ({"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.9", "rangeEnd": "10.1.2.3"},
         "is after 'rangeEnd'"),
        ({"subnet": "10.1.2.0/24", "gateway": "10.8.0.1"}, "'gateway' 10.8.0.1 is not inside"),
        ({"subnet": "10.1.2.0/24", "gateway": "x"}, "'gateway' 'x' is not a valid IP"),
        ("10.1.2.0/24", "must be an object"),
    ],
)
def test_invalid_range(raw: Any, fragment: str) -> None:
    with pytest.raises(InvalidConfig) as e:
        parse_range(raw, "ipam")
    assert e.value.code == 7
    assert fragment in e.value.msg


def test_range_set_rules() -> None:
    with pytest.raises(InvalidConfig, match="empty"):
        parse_range_set([], "set 0")
    with pytest.raises(InvalidConfig, match="mixes IPv4 and IPv6"):
        parse_range_set([{"subnet": "10.1.0.0/24"}, {"subnet": "fd00::/64"}], "set 0")
    with pytest.raises(InvalidConfig, match="overlap"):
        parse_range_set([{"subnet": "10.1.0.0/24"}, {"subnet": "10.1.0.0/25"}], "set 0")
    with pytest.raises(InvalidConfig, match="list of ranges"):
        parse_range_set({"subnet": "10.1.0.0/24"}, "set 0")
    # Same subnet, disjoint windows: allowed, as in the reference.
    rs = parse_range_set([{"subnet": "10.1.0.0/24", "rangeEnd": "10.1.0.9"},
                          {"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10"}], "set 0")
    assert len(rs.ranges) == 2


def test_range_sets_must_not_overlap() -> None:
    a = parse_range_set([{"subnet": "10.1.0.0/24"}], "a")
    b = parse_range_set([{"subnet": "10.1.0.0/25"}], "b")
    c = parse_range_set([{"subnet": "fd00::/64"}], "c")
    check_no_overlap([a, c])
    with pytest.raises(InvalidConfig, match=r"range set 0 .* overlaps with range set 1"):
        check_no_overlap([a, b])


def _order(rs: RangeSet, last: str | None, n: int = 100) -> list[str]:
    out = []
    for i, (addr, _) in enumerate(rs.candidates(ip(last) if last else None)):
        if i >= n:
            break
        out.append(str(addr))
    return out


def test_candidates_skip_gateway_network_broadcast() -> None:
    rs = parse_range_set([{"subnet": "10.0.0.0/29", "rangeStart": "10.0.0.0",
                           "rangeEnd": "10.0.0.7", "gateway": "10.0.0.3"}], "s")
    assert _order(rs, None) == ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"]


def test_candidates_round_robin_after_last_reserved() -> None:
    rs = parse_range_set([{"subnet": "10.0.0.0/29"}], "s")  # .2-.6 usable, .1 gateway
    assert _order(rs, "10.0.0.4") == ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3",
                                      "10.0.0.4"]
    # At the end of the window: wrap to the start.
    assert _order(rs, "10.0.0.6") == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5",
                                      "10.0.0.6"]
    # A last address outside the set (ranges changed): start from the beginning.
    assert _order(rs, "192.168.0.1")[0] == "10.0.0.2"


def test_candidates_cross_ranges() -> None:
    rs = parse_range_set([{"subnet": "10.0.0.0/30"}, {"subnet": "10.0.1.0/30"}], "s")
    # /30: .1 is gateway, .2 usable; so one address per range
    assert _order(rs, None) == ["10.0.0.2", "10.0.1.2"]
    assert _order(rs, "10.0.0.2") == ["10.0.1.2", "10.0.0.2"]
    assert _order(rs, "10.0.1.2") == ["10.0.0.2", "10.0.1.2"]


def test_candidates_each_address_once() -> None:
    rs = parse_range_set([{"subnet": "fd00::/124", "rangeStart": "fd00::3"}], "s")
    for last in (None, "fd00::3", "fd00::9", "fd00::f"):
        got = _order(rs, last)
        assert sorted(got, key=lambda s: int(ip(s))) == [f"fd00::{i:x}" for i in range(3, 16)]


def test_window_with_only_reserved_addresses_is_rejected() -> None:
    with pytest.raises(InvalidConfig, match="no allocatable address"):
        parse_range({"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.1",
                     "rangeEnd": "10.1.2.1"}, "r")
    with pytest.raises(InvalidConfig, match="no allocatable address"):
        parse_range({"subnet": "::/126", "rangeStart": "::1", "rangeEnd": "::1"}, "r")
    r = parse_range({"subnet": "::/126", "rangeStart": "::1", "rangeEnd": "::2"}, "r")
    assert r.contains(ip("::2"))
