"""Which interface a hot-plugged element gets, and which existing one an element keeps."""

from __future__ import annotations

import pytest

from multihome.attach import hotplug
from multihome.attach.naming import assign_added_names
from multihome.attach.plan import Attachment
from multihome.attach.selection import parse_networks_annotation
from multihome.cni.errors import InvalidConfig


def test_an_unnamed_element_gets_multus_index_when_that_name_is_free() -> None:
    assert assign_added_names([None], [2], {"eth0", "net1"}, "ns/p") == ["net2"]


def test_a_name_in_use_is_never_given_to_another_element() -> None:
    # net2 is held (maybe by an interface being unplugged in the same edit): next free
    assert assign_added_names([None, None], [2, 3], {"eth0", "net2", "net3"}, "ns/p") == [
        "net4", "net5"]


def test_a_generated_name_steps_over_names_other_new_elements_request() -> None:
    assert assign_added_names([None, "net1"], [1, 2], {"eth0"}, "ns/p") == ["net2", "net1"]


def test_the_same_edit_always_gives_the_same_names() -> None:
    first = assign_added_names([None, "data0", None], [3, 4, 5], {"eth0", "net1", "net4"}, "p")
    assert first == assign_added_names([None, "data0", None], [3, 4, 5],
                                       {"eth0", "net1", "net4"}, "p") == ["net3", "data0",
                                                                          "net5"]


def test_an_invalid_requested_name_is_refused() -> None:
    with pytest.raises(InvalidConfig, match="pod ns/p"):
        assign_added_names(["x" * 16], [1], {"eth0"}, "ns/p")


def _attached(text: str, names: list[str]) -> list[Attachment]:
    out = []
    for sel, ifname in zip(parse_networks_annotation(text, "ns", "p"), names, strict=True):
        out.append(Attachment(sel.qualified_name, ifname, {}, element=sel.to_dict()))
    return out


def test_elements_match_their_attachments_by_element_not_by_position() -> None:
    current = _attached("a,b,a", ["net1", "net2", "net3"])
    matched = hotplug.match_elements(current, parse_networks_annotation("b,a", "ns", "p"))
    assert {i: a.ifname for i, a in matched.items()} == {0: "net2", 1: "net1"}


def test_a_changed_attribute_is_a_different_element() -> None:
    current = _attached('[{"name": "a", "ips": ["10.1.0.5/24"]}]', ["net1"])
    same = parse_networks_annotation('[{"name": "a", "ips": ["10.1.0.5/24"]}]', "ns", "p")
    other = parse_networks_annotation('[{"name": "a", "ips": ["10.1.0.6/24"]}]', "ns", "p")
    assert hotplug.match_elements(current, same) == {0: current[0]}
    assert hotplug.match_elements(current, other) == {}


def test_a_named_element_never_loses_its_interface_to_an_unnamed_one() -> None:
    current = _attached("a@data0", ["data0"])
    matched = hotplug.match_elements(current, parse_networks_annotation("a,a@data0", "ns", "p"))
    assert {i: a.ifname for i, a in matched.items()} == {1: "data0"}
