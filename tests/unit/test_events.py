"""The engine's events are worded as Multus words them (pkg/multus/multus.go)."""

from __future__ import annotations

from multihome.attach.events import added_interface
from multihome.cni.result import Result
from multihome.store.base import Object


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[tuple[str, str], str, str, str]] = []

    def record_event(self, pod: Object | tuple[str, str], reason: str, message: str,
                     event_type: str = "Normal") -> None:
        assert isinstance(pod, tuple)
        self.events.append((pod, reason, message, event_type))


def _result(ips: list[str]) -> Result:
    return Result.from_dict({"cniVersion": "1.0.0",
                             "interfaces": [{"name": "net1", "sandbox": "/run/netns/x"}],
                             "ips": [{"address": a, "interface": 0} for a in ips]})


def test_addresses_are_listed_with_their_prefix_like_gos_percent_v() -> None:
    sink = Sink()
    added_interface(sink, ("ns", "p"), "net1", "ns/nad",
                    _result(["10.1.0.5/24", "fd00::5/64"]))
    assert sink.events == [(("ns", "p"), "AddedInterface",
                            "Add net1 [10.1.0.5/24 fd00::5/64] from ns/nad", "Normal")]


def test_an_interface_without_addresses_gives_empty_brackets() -> None:
    sink = Sink()
    added_interface(sink, ("ns", "p"), "net1", "ns/nad", _result([]))
    assert sink.events[0][2] == "Add net1 [] from ns/nad"


def test_an_empty_result_records_nothing_and_a_store_without_events_is_fine() -> None:
    sink = Sink()
    added_interface(sink, ("ns", "p"), "net1", "ns/nad",
                    Result.from_dict({"cniVersion": "1.0.0"}))
    assert sink.events == []
    added_interface(None, ("ns", "p"), "net1", "ns/nad", _result(["10.1.0.5/24"]))


def test_no_network_found_is_a_warning_in_multus_words() -> None:
    from multihome.attach.events import no_network_found

    sink = Sink()
    no_network_found(sink, ("ns", "p"), "ns", "nope")
    assert sink.events == [(("ns", "p"), "NoNetworkFound",
                            "cannot find a network-attachment-definition (nope) in namespace "
                            '(ns): networkattachmentdefinition.k8s.cni.cncf.io "nope" not '
                            "found", "Warning")]
