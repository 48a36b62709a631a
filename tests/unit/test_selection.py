"""`k8s.v1.cni.cncf.io/networks` parsing: both forms, and one clear sentence per invalid input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multihome.attach.selection import (
    DEFAULT_NETWORK_ANNOTATION,
    NETWORKS_ANNOTATION,
    InvalidNetworkSelection,
    NetworkSelection,
    is_json_form,
    parse_default_network_annotation,
    parse_networks_annotation,
)
from multihome.cni.errors import InvalidConfig

POD_NS, POD = "multus-test", "web-1"


def parse(text: str) -> list[NetworkSelection]:
    return parse_networks_annotation(text, POD_NS, POD)


def test_comma_form_defaults_namespace_and_reads_interface() -> None:
    sels = parse("bridge-dev, other/macvlan@net5 ,bridge-dev")
    assert [(s.namespace, s.name, s.interface, s.index) for s in sels] == [
        ("multus-test", "bridge-dev", None, 1),
        ("other", "macvlan", "net5", 2),
        ("multus-test", "bridge-dev", None, 3),  # the same NAD twice is two attachments
    ]
    assert sels[1].qualified_name == "other/macvlan"


def test_comma_form_empty_namespace_or_interface_means_default() -> None:
    (sel,) = parse("/bridge-dev@")
    assert (sel.namespace, sel.name, sel.interface) == ("multus-test", "bridge-dev", None)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_annotation_selects_nothing(text: str) -> None:
    assert parse(text) == []


def test_json_form_with_every_key() -> None:
    text = json.dumps([{
        "name": "bridge-dev", "namespace": "other", "interface": "net7",
        "ips": ["10.10.0.5/24", "fd00::5/64"], "mac": "02:AA:bb:00:00:01",
        "default-route": ["10.10.0.1"], "cni-args": {"foo": "bar"},
        "infiniband-guid": "c2:11:22:33:44:55:66:77",
        "bandwidth": {"ingressRate": 1000, "egressBurst": 10},
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "TCP"}],
        "deviceID": "0000:03:00.1", "unknown-key": "ignored like Multus does",
    }])
    (sel,) = parse(text)
    assert sel == NetworkSelection(
        name="bridge-dev", namespace="other", interface="net7",
        ips=["10.10.0.5/24", "fd00::5/64"], mac="02:aa:bb:00:00:01",
        default_route=["10.10.0.1"], cni_args={"foo": "bar"},
        infiniband_guid="c2:11:22:33:44:55:66:77",
        bandwidth={"ingressRate": 1000, "egressBurst": 10},
        port_mappings=[{"hostPort": 8080, "containerPort": 80, "protocol": "TCP"}],
        device_id="0000:03:00.1", index=1,
    )


def test_json_form_defaults_namespace_and_allows_dotted_ifname() -> None:
    (sel,) = parse('[{"name": "bridge-dev", "interface": "eth1.5"}]')
    assert (sel.namespace, sel.interface) == ("multus-test", "eth1.5")


@pytest.mark.parametrize("text,expected", [
    ("a", False), ("ns/a@net1, b", False), ('"a"', True), ("[", True), ("{", True),
])
def test_json_detection_follows_multus(text: str, expected: bool) -> None:
    assert is_json_form(text) is expected


# Each invalid input, and the exact sentence a user gets for it.
P = f"pod {POD_NS}/{POD}: {NETWORKS_ANNOTATION}"
DNS = ("is not a DNS-1123 label (lower case letters, digits and '-', starting and "
       "ending with a letter or digit)")
INVALID: list[tuple[str, str]] = [
    ("a/b/c", f'{P} element 1 ("a/b/c"): has more than one \'/\': expected '
              "[namespace/]name[@interface]"),
    ("a@b@c", f'{P} element 1 ("a@b@c"): has more than one \'@\': expected '
              "[namespace/]name[@interface]"),
    ("good, Bridge", f'{P} element 2 ("Bridge"): network name "Bridge" {DNS}'),
    ("Ns/a", f'{P} element 1 ("Ns/a"): namespace "Ns" {DNS}'),
    ("-a", f'{P} element 1 ("-a"): network name "-a" {DNS}'),
    ("a_b", f'{P} element 1 ("a_b"): network name "a_b" {DNS}'),
    ("a,,b", f'{P} element 2 (""): is empty (two commas in a row, or a trailing comma)'),
    ("a,", f'{P} element 2 (""): is empty (two commas in a row, or a trailing comma)'),
    ("a@Net1", f'{P} element 1 ("a@Net1"): interface name "Net1" {DNS}'),
    ("a@net1-is-way-too-long", f'{P} element 1 ("a@net1-is-way-too-long"): interface name '
                               '"net1-is-way-too-long" is longer than 15 characters'),
    ("x" * 64, f'{P} element 1 ("{"x" * 64}"): network name "{"x" * 37}..." is longer than '
               "63 characters"),
    ("a@net1, b@net1", f"{P} element 2 (multus-test/b): interface name \"net1\" is already "
                       "requested by element 1"),
    ('[{"name": "a",', f"{P}: is not valid JSON (Expecting property name enclosed in double "
                      "quotes: line 1 column 15 (char 14))"),
    ('{"name": "a"}', f"{P}: must be a JSON list of objects; wrap the object in [ ]"),
    ('"a"', f'{P}: must be a JSON list of objects, not "a"'),
    ("[1]", f'{P} element 1 (1): must be a JSON object with at least "name"'),
    ('[{"namespace": "x"}]', f'{P} element 1 ({{"namespace":"x"}}): has no "name"'),
    ('[{"name": 5}]', f'{P} element 1 ({{"name":5}}): "name" must be a string, not 5'),
    ('[{"name": "A"}]', f'{P} element 1 ({{"name":"A"}}): network name "A" {DNS}'),
    ('[{"name": "a", "namespace": "x/y"}]',
     f'{P} element 1 ({{"name":"a","namespace":"x/y"}}): namespace "x/y" {DNS}'),
    ('[{"name": "a", "interface": "a/b"}]',
     f'{P} element 1 ({{"name":"a","interface":"a/b"}}): interface name "a/b" is not a valid '
     "Linux interface name (no '/', ':' or whitespace, not '.' or '..')"),
    ('[{"name": "a", "interface": "abcdefghijklmnop"}]',
     f'{P} element 1 ({{"name":"a","interface":"abcdefghijklmnop"}}): interface name '
     '"abcdefghijklmnop" is longer than 15 characters'),
    ('[{"name": "a", "interface": "n1"}, {"name": "b", "interface": "n1"}]',
     f'{P} element 2 (multus-test/b): interface name "n1" is already requested by element 1'),
    ('[{"name": "a", "ips": ["10.0.0.1"]}]',
     f'{P} element 1 ({{"name":"a","ips":["10.0.0.1"]}}): IP "10.0.0.1" in "ips" has no prefix '
     'length: write it in CIDR notation, like "10.10.0.5/24"'),
    ('[{"name": "a", "ips": ["10.0.0.1/33"]}]',
     f'{P} element 1 ({{"name":"a","ips":["10.0.0.1/33"]}}): "10.0.0.1/33" in "ips" is not an '
     'IP address in CIDR notation, like "10.10.0.5/24"'),
    ('[{"name": "a", "ips": "10.0.0.1/24"}]',
     f'{P} element 1 ({{"name":"a","ips":"10.0.0.1/24"}}): "ips" must be a list of strings, '
     'not "10.0.0.1/24"'),
    ('[{"name": "a", "mac": "zz"}]',
     f'{P} element 1 ({{"name":"a","mac":"zz"}}): MAC address "zz" is not six hex octets like '
     '"02:00:00:00:00:01"'),
    ('[{"name": "a", "mac": "01:00:00:00:00:01"}]',
     f'{P} element 1 ({{"name":"a","mac":"01:00:00:00:00:01"}}): MAC address '
     '"01:00:00:00:00:01" is a multicast address and cannot be assigned to an interface'),
    ('[{"name": "a", "mac": "00:00:00:00:00:00"}]',
     f'{P} element 1 ({{"name":"a","mac":"00:00:00:00:00:00"}}): MAC address '
     '"00:00:00:00:00:00" is all zeros'),
    ('[{"name": "a", "default-route": ["10.0.0.0/24"]}]',
     f'{P} element 1 ({{"name":"a","default-route":["10.0.0.0/24"]}}): "10.0.0.0/24" in '
     '"default-route" is not an IP address (a gateway address without prefix length, like '
     '"10.10.0.1")'),
    ('[{"name": "a", "default-route": ["10.0.0.1"]}, {"name": "b", "default-route": '
     '["10.1.0.1"]}]',
     f"{P} element 2 (multus-test/b): asks for an IPv4 default route, but element 1 already "
     "does; only one IPv4 and one IPv6 default route are allowed"),
    ('[{"name": "a", "default-route": ["fd00::1", "fd01::1"]}]',
     f"{P} element 1 (multus-test/a): asks for an IPv6 default route, but this element "
     "already does; only one IPv4 and one IPv6 default route are allowed"),
    ('[{"name": "a", "cni-args": [1]}]',
     f'{P} element 1 ({{"name":"a","cni-args":[1]}}): "cni-args" must be an object, not [1]'),
    ('[{"name": "a", "infiniband-guid": "c2:11"}]',
     f'{P} element 1 ({{"name":"a","infiniband-guid":"c2:11"}}): "infiniband-guid" "c2:11" is '
     'not eight hex octets like "c2:11:22:33:44:55:66:77"'),
    ('[{"name": "a", "bandwidth": {"ingressRate": -1}}]',
     f'{P} element 1 ({{"name":"a","bandwidth":{{"ingressRate":-1}}}}): "bandwidth.ingressRate" '
     "must be a non-negative integer, not -1"),
    ('[{"name": "a", "bandwidth": {"rate": 1}}]',
     f'{P} element 1 ({{"name":"a","bandwidth":{{"rate":1}}}}): "bandwidth" has unknown key '
     '"rate": expected ingressRate, ingressBurst, egressRate, egressBurst'),
    ('[{"name": "a", "portMappings": [{"hostPort": 0, "containerPort": 80}]}]',
     f'{P} element 1 ({{"name":"a","portMappings":[{{"hostPort":0,"containerPort":80}}]}}): '
     '"portMappings" entry 1 needs "hostPort" between 1 and 65535, not 0'),
    ('[{"name": "a", "portMappings": [{"hostPort": 1, "containerPort": 2, "protocol": "icmp"}]}]',
     f'{P} element 1 ({{"name":"a","portMappings":[{{"hostPort":1,"containerPort":2,'
     '"protocol":"icmp"}]}): "portMappings" entry 1 has protocol "icmp": expected tcp, udp or '
     "sctp"),
    ('[{"name": "a", "deviceID": 7}]',
     f'{P} element 1 ({{"name":"a","deviceID":7}}): "deviceID" must be a string, not 7'),
]


@pytest.mark.parametrize("text,message", INVALID, ids=[t[:30] for t, _ in INVALID])
def test_invalid_selection_gets_one_clear_sentence(text: str, message: str) -> None:
    with pytest.raises(InvalidNetworkSelection) as e:
        parse(text)
    assert str(e.value) == message
    assert isinstance(e.value, InvalidConfig)
    assert e.value.code == 7
    assert e.value.pod == f"{POD_NS}/{POD}"
    assert "\n" not in str(e.value)


def test_long_element_text_is_shortened_in_message() -> None:
    text = json.dumps([{"name": "a", "cni-args": {"k": "v" * 200}, "mac": "zz"}])
    with pytest.raises(InvalidNetworkSelection) as e:
        parse(text)
    assert "..." in str(e.value)
    assert len(str(e.value)) < 250
    assert e.value.index == 1


def test_one_v4_and_one_v6_default_route_are_allowed() -> None:
    sels = parse('[{"name": "a", "default-route": ["10.0.0.1"]}, '
                 '{"name": "b", "default-route": ["fd00::1"]}]')
    assert [s.default_route for s in sels] == [["10.0.0.1"], ["fd00::1"]]


def test_default_network_annotation() -> None:
    sel = parse_default_network_annotation("kube-system/ovn-primary", "ns", "p")
    assert sel is not None
    assert (sel.namespace, sel.name) == ("kube-system", "ovn-primary")
    sel = parse_default_network_annotation('[{"name": "calico"}]', "ns", "p")
    assert sel is not None and (sel.namespace, sel.name) == ("ns", "calico")
    assert parse_default_network_annotation("", "ns", "p") is None
    with pytest.raises(InvalidNetworkSelection) as e:
        parse_default_network_annotation("a, b", "ns", "p")
    assert str(e.value) == (f"pod ns/p: {DEFAULT_NETWORK_ANNOTATION}: names 2 networks; the "
                            "default network must be exactly one")


_label = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")


@given(st.lists(st.tuples(_label, st.one_of(st.none(), _label)), min_size=1, max_size=5))
def test_json_form_round_trips(items: list[tuple[str, str | None]]) -> None:
    sels = [NetworkSelection(name=n, namespace=ns or POD_NS, index=i)
            for i, (n, ns) in enumerate(items, 1)]
    text = json.dumps([s.to_dict() for s in sels])
    assert parse(text) == sels
    comma = ", ".join(f"{s.namespace}/{s.name}" for s in sels)
    assert parse(comma) == sels


def test_ipam_claim_reference_is_read_and_checked() -> None:
    (sel,) = parse('[{"name": "vm-net", "ipam-claim-reference": "vm1.pod16367aacb67"}]')
    assert sel.ipam_claim_reference == "vm1.pod16367aacb67"
    assert sel.to_dict()["ipam-claim-reference"] == "vm1.pod16367aacb67"
    for bad in ('"Not_A_Name"', "5", '"x/y"'):
        with pytest.raises(InvalidNetworkSelection, match="ipam-claim-reference"):
            parse(f'[{{"name": "vm-net", "ipam-claim-reference": {bad}}}]')
