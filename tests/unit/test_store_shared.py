"""Process-wide stores: one per file (or cluster), kept across close(), renewed when the
file they point to was replaced."""

from __future__ import annotations

import os
from pathlib import Path

from multihome.store import NAD, Object
from multihome.store.shared import Registry
from multihome.store.sqlite import shared_store


def _nad(name: str) -> Object:
    return Object.from_manifest({"apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD,
                                 "metadata": {"name": name, "namespace": "ns"},
                                 "spec": {"config": "{}"}})


def test_one_store_per_file_survives_close(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    first = shared_store(path)
    first.create(_nad("a"))
    first.close()
    again = shared_store(path)
    assert again is first
    assert again.get(NAD, "ns", "a").name == "a"  # still open after close()


def test_a_replaced_file_gets_a_new_store(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    first = shared_store(path)
    first.create(_nad("old"))
    for leftover in tmp_path.iterdir():
        os.unlink(leftover)  # `lab down` removes the store file (and its WAL)
    second = shared_store(path)
    assert second is not first
    assert [o.name for o in second.list(NAD, "ns")] == []


class _Thing:
    def __init__(self) -> None:
        self.shared = False


def test_registry_marks_shared_and_forgets() -> None:
    reg: Registry[str, _Thing] = Registry()
    thing = reg.get("k", _Thing)
    assert thing.shared and reg.get("k", _Thing) is thing
    assert reg.get("k", _Thing, lambda _: False) is not thing  # no longer valid
    newer = reg.get("k", _Thing)
    reg.forget(newer)
    assert reg.get("k", _Thing) is not newer
