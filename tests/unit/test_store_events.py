"""The lab store keeps events about pods as the API server does, bounded per pod."""

from __future__ import annotations

from pathlib import Path

from multihome.store.events import events_of
from multihome.store.sqlite import MAX_EVENTS_PER_POD, SQLiteStore


def test_events_are_kept_per_pod_newest_first_to_stay(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    try:
        for i in range(MAX_EVENTS_PER_POD + 5):
            store.record_event(("ns", "web"), "AddedInterface", f"m{i}")
        store.record_event(("ns", "web.x"), "NoNetworkFound", "other pod", "Warning")
        store.record_event(("other", "web"), "AddedInterface", "other namespace")
        mine = events_of(store, "ns", "web")
        assert len(mine) == MAX_EVENTS_PER_POD
        assert {e.body["message"] for e in mine} == {
            f"m{i}" for i in range(5, MAX_EVENTS_PER_POD + 5)}
        (other,) = events_of(store, "ns", "web.x")
        assert (other.body["type"], other.body["reason"]) == ("Warning", "NoNetworkFound")
        assert other.body["involvedObject"] == {"apiVersion": "v1", "kind": "Pod",
                                                "namespace": "ns", "name": "web.x", "uid": ""}
        assert [e.body["message"] for e in events_of(store, "other", "web")] == [
            "other namespace"]
    finally:
        store.close()


def test_pruning_one_pod_never_drops_a_pod_whose_name_shares_the_prefix(tmp_path: Path
                                                                        ) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    try:
        for i in range(MAX_EVENTS_PER_POD + 3):
            store.record_event(("ns", "web.x"), "AddedInterface", f"x{i}")
            store.record_event(("ns", "web"), "AddedInterface", f"w{i}")
        assert {e.body["message"] for e in events_of(store, "ns", "web.x")} == {
            f"x{i}" for i in range(3, MAX_EVENTS_PER_POD + 3)}
        assert {e.body["message"] for e in events_of(store, "ns", "web")} == {
            f"w{i}" for i in range(3, MAX_EVENTS_PER_POD + 3)}
    finally:
        store.close()
