"""network-status entries from delegate results."""

from __future__ import annotations

import json

from multihome.attach.naming import assign_names
from multihome.attach.status import entries_from_result, gateways_of, parse, render
from multihome.cni.result import Result


def _result() -> Result:
    return Result.from_dict({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "br0", "mac": "aa:bb:cc:00:00:01"},
                       {"name": "veth1", "mac": "aa:bb:cc:00:00:02"},
                       {"name": "net1", "mac": "aa:bb:cc:00:00:03", "sandbox": "/run/ns",
                        "mtu": 1400}],
        "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 2},
                {"address": "fd00::5/64", "interface": 2}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"},
                   {"dst": "10.9.0.0/16", "gw": "10.1.0.9"}],
        "dns": {"nameservers": ["10.1.0.53"]},
    })


def test_one_entry_per_sandbox_interface() -> None:
    (entry,) = entries_from_result("ns/nad", "net1", _result(), default=False)
    d = entry.to_dict()
    assert d == {"name": "ns/nad", "interface": "net1", "ips": ["10.1.0.5", "fd00::5"],
                 "mac": "aa:bb:cc:00:00:03", "mtu": 1400,
                 "dns": {"nameservers": ["10.1.0.53"]}}


def test_gateway_and_device_info() -> None:
    (entry,) = entries_from_result("ns/nad", "net1", _result(), default=True,
                                   gateways=gateways_of(_result()),
                                   device_info={"type": "pci", "version": "1.1.0"})
    d = entry.to_dict()
    assert d["gateway"] == ["10.1.0.1"] and d["default"] is True
    assert d["device-info"] == {"type": "pci", "version": "1.1.0"}


def test_gateway_comes_from_default_routes_only_as_in_multus() -> None:
    result = Result.from_dict({"cniVersion": "1.0.0", "ips": [
        {"address": "10.2.0.7/24", "gateway": "10.2.0.1"}]})
    assert gateways_of(result) == []  # an address's gateway field is not a route
    assert gateways_of(_result()) == ["10.1.0.1"]


def test_a_non_default_entry_has_no_default_key() -> None:
    (entry,) = entries_from_result("ns/nad", "net1", _result(), default=False)
    assert "default" not in entry.to_dict()


def test_result_without_sandbox_interface() -> None:
    result = Result.from_dict({"cniVersion": "0.3.1", "ips": [
        {"version": "4", "address": "10.2.0.7/24"}]})
    (entry,) = entries_from_result("cluster", "eth0", result, default=True)
    assert entry.interface == "eth0" and entry.ips == ["10.2.0.7"]


def test_render_and_parse_round_trip() -> None:
    entries = entries_from_result("ns/nad", "net1", _result(), default=False)
    assert parse(render(entries)) == json.loads(render(entries))
    assert parse("not json") == [] and parse('{"a": 1}') == []


def test_generated_names_follow_positions() -> None:
    assert assign_names([None, "custom", None], "ns/p") == ["net1", "custom", "net3"]
