"""nmpolicy captures: filters, replace, pipes, merges and `{{ capture.… }}` references."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multihome.node import capture
from multihome.node.capture import CaptureError
from multihome.node.policy import validate_policy
from multihome.store import Object

CURRENT: dict[str, Any] = {
    "interfaces": [
        {"name": "eth0", "type": "ethernet", "state": "up", "mtu": 1500,
         "mac-address": "02:00:00:00:00:01",
         "ipv4": {"enabled": True, "address": [{"ip": "10.0.0.2", "prefix-length": 24}]}},
        {"name": "eth1", "type": "ethernet", "state": "down", "mtu": 9000,
         "mac-address": "02:00:00:00:00:02", "ipv4": {"enabled": False}},
        {"name": "br9", "type": "linux-bridge", "state": "up", "mtu": 1500,
         "bridge": {"port": []}},
    ],
    "routes": {
        "config": [],
        "running": [
            {"destination": "10.0.0.0/24", "next-hop-interface": "eth0", "table-id": 254},
            {"destination": "0.0.0.0/0", "next-hop-interface": "eth0",
             "next-hop-address": "10.0.0.1", "metric": 100, "table-id": 254},
            {"destination": "10.9.0.0/16", "next-hop-interface": "br9", "table-id": 254},
        ],
    },
}

BRIDGE_ON_DEFAULT_GW = {
    "default-gw": 'routes.running.destination=="0.0.0.0/0"',
    "base-iface": "interfaces.name==capture.default-gw.routes.running.0.next-hop-interface",
    "base-iface-routes": "routes.running.next-hop-interface=="
                         "capture.default-gw.routes.running.0.next-hop-interface",
    "bridge-routes": 'capture.base-iface-routes | routes.running.next-hop-interface:="br1"',
}


def test_filter_keeps_only_the_matching_items_along_the_path() -> None:
    got = capture.generate({"gw": 'routes.running.destination == "0.0.0.0/0"'}, {}, CURRENT)
    assert got.captured["gw"] == {"routes": {"running": [CURRENT["routes"]["running"][1]]}}


def test_filter_on_a_number_and_a_boolean() -> None:
    got = capture.generate({"jumbo": "interfaces.mtu == 9000",
                            "v4": "interfaces.ipv4.enabled == true"}, {}, CURRENT)
    assert [i["name"] for i in got.captured["jumbo"]["interfaces"]] == ["eth1"]
    assert [i["name"] for i in got.captured["v4"]["interfaces"]] == ["eth0"]


def test_bridge_on_the_default_gateway_interface() -> None:
    desired: dict[str, Any] = {"interfaces": [{
        "name": "br1", "type": "linux-bridge", "state": "up",
        "mac-address": "{{ capture.base-iface.interfaces.0.mac-address }}",
        "bridge": {"port": [{"name": "{{ capture.base-iface.interfaces.0.name }}"}]},
        "ipv4": "{{ capture.base-iface.interfaces.0.ipv4 }}"}],
        "routes": {"config": "{{ capture.bridge-routes.routes.running }}"}}
    got = capture.generate(BRIDGE_ON_DEFAULT_GW, desired, CURRENT)
    iface = got.desired["interfaces"][0]
    assert iface["bridge"]["port"] == [{"name": "eth0"}]
    assert iface["mac-address"] == "02:00:00:00:00:01"
    assert iface["ipv4"] == CURRENT["interfaces"][0]["ipv4"]
    assert [r["next-hop-interface"] for r in got.desired["routes"]["config"]] == ["br1", "br1"]
    assert [r["destination"] for r in got.desired["routes"]["config"]] == [
        "10.0.0.0/24", "0.0.0.0/0"]
    # the input is left as it was: replace works on copies
    assert CURRENT["routes"]["running"][0]["next-hop-interface"] == "eth0"
    assert desired["interfaces"][0]["bridge"]["port"][0]["name"].startswith("{{")


def test_merge_concatenates_lists_at_the_same_path() -> None:
    got = capture.generate({
        "gw": 'routes.running.destination=="0.0.0.0/0"',
        "br9": 'routes.running.next-hop-interface=="br9"',
        "both": "capture.gw.routes.running + capture.br9.routes.running"}, {}, CURRENT)
    assert [r["destination"] for r in got.captured["both"]["routes"]["running"]] == [
        "0.0.0.0/0", "10.9.0.0/16"]


def test_cached_captures_are_reused() -> None:
    cached = {"gw": {"routes": {"running": [{"next-hop-interface": "old0"}]}}}
    got = capture.generate({"gw": 'routes.running.destination=="0.0.0.0/0"'},
                           {"x": "{{ capture.gw.routes.running.0.next-hop-interface }}"},
                           CURRENT, cached)
    assert got.desired == {"x": "old0"}


def test_a_filter_without_match_captures_an_empty_state() -> None:
    got = capture.generate({"none": 'interfaces.name=="nope"'}, {}, CURRENT)
    assert got.captured["none"] == {}


@pytest.mark.parametrize(("captures", "desired", "message"), [
    ({"a": 'interfaces.name=="nope"'}, {"x": "{{ capture.a.interfaces.0.name }}"},
     "capture.a.interfaces.0.name: capture 'a' is empty (its filter matched nothing"),
    ({"a": 'interfaces.name=="nope"', "b": 'capture.a | interfaces.name:="br1"'}, {},
     "capture 'b': capture 'a' is empty (its filter matched nothing on this node)"),
    ({"a": 'interfaces.name=="eth0"'}, {"x": "{{ capture.a.routes }}"},
     "capture.a.routes: routes is not in the captured state"),
    ({"a": 'interfaces.name=="eth0"'}, {"x": "{{ capture.a.interfaces.3.name }}"},
     "capture.a.interfaces.3.name: interfaces.3 is out of range (the list has 1 item)"),
    ({}, {"x": "{{ capture.missing.interfaces }}"},
     "capture 'missing' is not defined in spec.capture"),
    ({"a": "interfaces.name==capture.b.interfaces.0.name"}, {},
     "capture 'a': capture 'b' is not defined"),
    ({"a": "interfaces.mtu==\"1500\""}, {},
     "capture 'a': type mismatch: mtu is a number (1500), compared with a string"),
    ({"a": "interfaces.name="}, {}, "capture 'a': unexpected character '='"),
    ({"a": "interfaces.name==\"x"}, {}, "capture 'a': unterminated string"),
    ({"a": "interfaces.name=="}, {}, "capture 'a': expected string or number or identity "
                                     "at position 17, found the end"),
    ({"a": "capture.b | interfaces.name:=\"x\"", "b": "capture.a | interfaces.mtu:=1"}, {},
     "captures refer to each other in a cycle: a -> b -> a"),
    ({"a": "nosuch.name==\"x\""}, {}, "capture 'a': 'nosuch' is not in the state"),
    ({"a": 'interfaces.name=="eth0"'}, {"x": "br-{{ capture.a.interfaces.0.name }}"},
     "a capture reference must be the whole value"),
    ({"1a": 'interfaces.name=="eth0"'}, {}, "'1a' is not a capture name"),
    ("interfaces", {}, "spec.capture must map capture names to expressions"),
])
def test_errors_are_one_line_and_name_the_capture(captures: Any, desired: Any,
                                                  message: str) -> None:
    with pytest.raises(CaptureError) as failed:
        capture.generate(captures, desired, CURRENT)
    assert message in str(failed.value)
    assert "\n" not in str(failed.value)


def test_admission_check_needs_no_state() -> None:
    capture.check(BRIDGE_ON_DEFAULT_GW, {"x": "{{ capture.default-gw.routes }}"})
    with pytest.raises(CaptureError, match="'nope' is not defined"):
        capture.check(BRIDGE_ON_DEFAULT_GW, {"x": ["{{ capture.nope.routes }}"]})


def test_bounds() -> None:
    with pytest.raises(CaptureError, match="longer than"):
        capture.parse("a." * 2000 + "b==1")
    with pytest.raises(CaptureError, match="too large"):
        capture.parse("interfaces.99999999999999999999.name==1")
    with pytest.raises(CaptureError, match="more than"):
        capture.parse_all({f"c{i}": 'interfaces.name=="x"' for i in range(100)})
    deep: Any = "{{ capture.a.interfaces }}"
    for _ in range(200):
        deep = [deep]
    with pytest.raises(CaptureError, match="nested deeper"):
        capture.check({"a": 'interfaces.name=="x"'}, deep)


_ALPHABET = st.sampled_from([*'abcz09.|:=+"{} -_\t', "capture.", "interfaces.",
                             "routes.running.", "==", ":=", "name", "0", "true"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ALPHABET, max_size=60).map("".join) | st.text(max_size=300))
def test_any_expression_parses_or_fails_cleanly(text: str) -> None:
    try:
        got = capture.generate({"a": text, "b": 'interfaces.name=="eth0"'},
                               {"x": "{{ capture.a.interfaces }}"}, CURRENT)
    except CaptureError as e:
        assert "\n" not in str(e) or "\n" in text
    else:
        assert isinstance(got.captured["a"], dict)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30)
                    | st.sampled_from(["{{ capture.b.interfaces.0.name }}", "{{", "{{ }}",
                                       "{{ capture.b }}", "{{ capture.zz.x }}"]),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=30))
def test_any_desired_state_expands_or_fails_cleanly(desired: Any) -> None:
    try:
        capture.generate({"b": 'interfaces.name=="eth0"'}, desired, CURRENT)
    except CaptureError as e:
        assert str(e)


def test_admission_view_of_a_desired_state_with_references() -> None:
    """What the schema sees at admission: stand-ins where a key is required, the rest of
    the references left out."""
    desired = {
        "interfaces": [
            {"name": "br1", "type": "linux-bridge", "mtu": "{{ capture.a.x }}",
             "ipv4": {"address": [{"ip": "{{ capture.a.ip }}", "prefix-length": 24}]},
             "ipv6": {"address": [{"ip": "{{ capture.a.ip6 }}",
                                   "prefix-length": "{{ capture.a.len }}"}]},
             "bridge": {"port": [{"name": "{{ capture.a.p }}"}, "{{ capture.a.more }}"]}},
            {"name": "{{ capture.a.n }}", "type": "vlan",
             "vlan": {"base-iface": "{{ capture.a.b }}", "id": "{{ capture.a.id }}"}}],
        "routes": {"config": "{{ capture.a.routes }}"}}
    view = capture.without_references(desired)
    assert view == {
        "interfaces": [
            {"name": "br1", "type": "linux-bridge",
             "ipv4": {"address": [{"ip": "192.0.2.1", "prefix-length": 24}]},
             "ipv6": {"address": [{"ip": "2001:db8::1", "prefix-length": 64}]},
             "bridge": {"port": [{"name": "capref1"}]}},
            {"name": "capref2", "type": "vlan", "vlan": {"base-iface": "capref3", "id": 1}}],
        "routes": {}}


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=20)
    | st.sampled_from(["{{ capture.a.interfaces.0.name }}", "{{ capture.b.x }}", "{{ }}",
                       "br0", "up", "linux-bridge", "10.0.0.1", "{{ capture.a }}"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["interfaces", "name", "type", "mtu", "bridge", "port",
                                       "ipv4", "address", "ip", "prefix-length", "routes",
                                       "config", "probes", "dns", "vlan", "id", "state",
                                       "base-iface", "x"]), inner, max_size=4),
    max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(captures=st.none() | st.dictionaries(st.sampled_from(["a", "b", "1x"]),
                                            st.sampled_from(['interfaces.name=="eth0"',
                                                             "interfaces.name==", 5, None,
                                                             "capture.a | x.y:=1"]),
                                            max_size=3) | st.text(max_size=5),
       desired=_VALUES)
def test_policy_admission_with_captures_refuses_cleanly(captures: Any, desired: Any) -> None:
    """Whatever spec.capture and desiredState hold, admission admits or gives a ValueError
    (a one-line reason), and never crashes."""
    body = {"apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
            "metadata": {"name": "p"}, "spec": {"capture": captures, "desiredState": desired}}
    try:
        validate_policy(Object.from_manifest(body))
    except ValueError as e:
        assert str(e)
