"""SQLiteStore.transaction: reads and writes inside commit together or not at all, and
no other writer gets in between (what the cluster-wide IPAM allocates with)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from multihome.store import NotFound, Object
from multihome.store.sqlite import SQLiteStore


def _cm(name: str, value: int) -> Object:
    return Object.from_manifest({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": name, "namespace": "t"},
                                 "data": {"n": str(value)}})


def test_an_error_inside_rolls_back_every_write(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as s:
        s.create(_cm("kept", 1))
        with pytest.raises(RuntimeError), s.transaction():
            s.create(_cm("a", 1))
            with s.transaction():  # nested: part of the outer one
                s.create(_cm("b", 1))
            raise RuntimeError("boom")
        for name in ("a", "b"):
            with pytest.raises(NotFound):
                s.get("ConfigMap", "t", name)
        assert s.get("ConfigMap", "t", "kept").body["data"] == {"n": "1"}
        with s.transaction():
            s.create(_cm("c", 1))
        assert s.get("ConfigMap", "t", "c").name == "c"


def _increment(path: str) -> None:
    with SQLiteStore(path) as s:
        for _ in range(50):
            with s.transaction():
                obj = s.get("ConfigMap", "t", "counter")
                obj.body["data"]["n"] = str(int(obj.body["data"]["n"]) + 1)
                s.update(obj)  # no version check: the transaction is the guard


def test_read_modify_write_inside_loses_no_update(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with SQLiteStore(path) as s:
        s.create(_cm("counter", 0))
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_increment, args=(path,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with SQLiteStore(path) as s:
        assert s.get("ConfigMap", "t", "counter").body["data"] == {"n": "200"}
