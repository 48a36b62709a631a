"""Link deletions of a pod's delegates run side by side go to the kernel as one request
per namespace, and each delegate still gets its own answer."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

import pytest

from multihome.cni.errors import CNIError
from multihome.net import link_batch, links
from multihome.net import netns as mh_netns
from support.netns import Netns

pytestmark = pytest.mark.netns


class CountingIPRoute:
    """A real IPRoute that also counts the deletion requests sent through it."""

    deletions: list[dict[str, Any]] = []

    def __init__(self, ipr: Any) -> None:
        self._ipr = ipr

    def link(self, command: str, **kw: Any) -> Any:
        if command == "del":
            CountingIPRoute.deletions.append(kw)
        return self._ipr.link(command, **kw)

    def fileno(self) -> int:
        return int(self._ipr.fileno())


def _veths(ns: Netns, names: list[str]) -> None:
    with mh_netns.iproute_in(ns.path) as ipr:
        for name in names:
            ipr.link("add", ifname=name, kind="veth", peer={"ifname": f"{name}p"})


def _names(ns: Netns) -> set[str]:
    with mh_netns.iproute_in(ns.path) as ipr:
        return {str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()}


def _side_by_side(batch: link_batch.DeleteBatch | None,
                  jobs: list[Callable[[], object]]) -> list[object]:
    """Each job in its own thread with this context, leaving the batch when done, as
    the engine's side-by-side DEL runs its delegates."""
    answers: list[object] = [None] * len(jobs)

    def run(i: int) -> None:
        try:
            answers[i] = jobs[i]()
        except Exception as e:  # the answer under test
            answers[i] = e
        finally:
            if batch is not None:
                batch.leave()

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(run, i))
               for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a participant never finished"
    return answers


def _delete_in(ns: Netns, name: str) -> Callable[[], bool]:
    def job() -> bool:
        with mh_netns.iproute_in(ns.path) as ipr:
            return links.delete_by_name(CountingIPRoute(ipr), name)  # type: ignore[arg-type]
    return job


def test_three_deletions_in_one_namespace_are_one_kernel_request(netns: Netns) -> None:
    _veths(netns, ["mhlb0", "mhlb1", "mhlb2"])
    CountingIPRoute.deletions.clear()
    with link_batch.coalesced(3) as batch:
        answers = _side_by_side(batch, [_delete_in(netns, f"mhlb{i}") for i in range(3)])
    assert answers == [True, True, True]
    assert not {"mhlb0", "mhlb1", "mhlb2", "mhlb0p"} & _names(netns)
    assert len(CountingIPRoute.deletions) == 1
    assert CountingIPRoute.deletions[0]["index"] == 0  # by group: the whole batch


def test_a_link_already_gone_answers_false_and_holds_nobody_up(netns: Netns) -> None:
    _veths(netns, ["mhlb3"])
    with link_batch.coalesced(2) as batch:
        answers = _side_by_side(batch, [_delete_in(netns, "mhlb3"),
                                        _delete_in(netns, "mhlb-never")])
    assert answers == [True, False]
    assert "mhlb3" not in _names(netns)


def test_a_participant_that_deletes_nothing_only_delays_the_others_until_it_leaves(
        netns: Netns) -> None:
    _veths(netns, ["mhlb4", "mhlb5"])
    with link_batch.coalesced(3) as batch:
        answers = _side_by_side(batch, [_delete_in(netns, "mhlb4"),
                                        _delete_in(netns, "mhlb5"), lambda: "no link"])
    assert answers == [True, True, "no link"]
    assert not {"mhlb4", "mhlb5"} & _names(netns)


def test_a_group_the_kernel_refuses_falls_back_to_each_link_alone(netns: Netns) -> None:
    # loopback cannot be deleted: with it in the group the kernel deletes none of them,
    # so each participant deletes its own link, and only lo's gets the refusal
    _veths(netns, ["mhlb6"])
    with link_batch.coalesced(2) as batch:
        answers = _side_by_side(batch, [_delete_in(netns, "mhlb6"),
                                        _delete_in(netns, "lo")])
    assert answers[0] is True
    assert isinstance(answers[1], CNIError) and "cannot delete link lo" in answers[1].msg
    assert "mhlb6" not in _names(netns) and "lo" in _names(netns)


def test_outside_a_batch_links_are_deleted_one_by_one(netns: Netns) -> None:
    _veths(netns, ["mhlb7"])
    CountingIPRoute.deletions.clear()
    assert link_batch.current() is None
    assert _delete_in(netns, "mhlb7")() is True
    assert CountingIPRoute.deletions == [{"ifname": "mhlb7"}]
    with link_batch.coalesced(1) as batch:
        assert batch is None  # nothing to coalesce for one delegate
