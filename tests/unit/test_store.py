"""The embedded SQLite store: CRUD, apply semantics, optimistic concurrency, several processes."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multihome.store import (
    LAST_APPLIED,
    NAD,
    POD,
    AlreadyExists,
    Conflict,
    InvalidObject,
    NotFound,
    Object,
    Store,
    resolve_kind,
    store_path,
)
from multihome.store.objects import UnknownKind, kind_info
from multihome.stores import open_store


def nad(name: str = "bridge-dev", namespace: str = "multus-test", config: str = "{}",
        annotations: dict[str, str] | None = None) -> Object:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return Object.from_manifest(
        {"apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD, "metadata": meta,
         "spec": {"config": config}},
        namespace,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(str(tmp_path / "s.db"))
    yield s
    s.close()


def test_create_sets_server_metadata(store: Store) -> None:
    created = store.create(nad())
    assert created.uid and len(created.uid) == 36
    assert created.resource_version >= 1
    assert created.creation_timestamp is not None
    assert created.metadata["namespace"] == "multus-test"
    got = store.get(NAD, "multus-test", "bridge-dev")
    assert got.body == created.body


def test_create_twice_is_already_exists(store: Store) -> None:
    store.create(nad())
    with pytest.raises(AlreadyExists) as e:
        store.create(nad())
    assert str(e.value) == ('networkattachmentdefinition "bridge-dev" already exists '
                            'in namespace "multus-test"')


def test_get_missing_is_not_found_with_message(store: Store) -> None:
    with pytest.raises(NotFound) as e:
        store.get(NAD, "multus-test", "bridge-dev")
    assert str(e.value) == ('networkattachmentdefinition "bridge-dev" not found '
                            'in namespace "multus-test"')
    assert isinstance(e.value, LookupError)
    assert (e.value.kind, e.value.namespace, e.value.name) == (NAD, "multus-test", "bridge-dev")


def test_same_name_in_two_namespaces_and_kinds_are_distinct(store: Store) -> None:
    store.create(nad(namespace="a"))
    store.create(nad(namespace="b"))
    pod = Object.from_manifest({"apiVersion": "v1", "kind": POD,
                                "metadata": {"name": "bridge-dev"}}, "a")
    store.create(pod)
    assert [o.namespace for o in store.list(NAD)] == ["a", "b"]
    assert [o.name for o in store.list(NAD, "a")] == ["bridge-dev"]
    assert store.list(NAD, "c") == []
    assert [o.kind for o in store.list(POD)] == [POD]


def test_list_is_sorted_by_namespace_then_name(store: Store) -> None:
    for ns, name in [("b", "z"), ("a", "y"), ("b", "a"), ("a", "b")]:
        store.create(nad(name, ns))
    assert [(o.namespace, o.name) for o in store.list(NAD)] == [
        ("a", "b"), ("a", "y"), ("b", "a"), ("b", "z")]


def test_resource_versions_increase_across_objects(store: Store) -> None:
    a = store.create(nad("a"))
    b = store.create(nad("b"))
    a2 = store.patch_annotations(NAD, "multus-test", "a", {"x": "1"})
    assert a.resource_version < b.resource_version < a2.resource_version


def test_update_with_stale_version_is_conflict(store: Store) -> None:
    first = store.create(nad())
    store.patch_annotations(NAD, "multus-test", "bridge-dev", {"x": "1"})
    first.spec["config"] = '{"type": "bridge"}'
    with pytest.raises(Conflict) as e:
        store.update(first, expected_version=first.resource_version)
    assert "has been modified" in str(e.value)
    current = store.get(NAD, "multus-test", "bridge-dev")
    current.spec["config"] = '{"type": "bridge"}'
    updated = store.update(current, expected_version=current.resource_version)
    assert updated.resource_version > current.resource_version
    assert updated.spec["config"] == '{"type": "bridge"}'
    assert updated.metadata["generation"] == 2
    assert updated.uid == first.uid  # identity survives an update


def test_update_without_version_overwrites_and_missing_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.update(nad())
    store.create(nad())
    obj = nad()
    obj.body["status"] = {"phase": "Ready"}
    assert store.update(obj).status == {"phase": "Ready"}


def test_patch_annotations_sets_and_removes(store: Store) -> None:
    store.create(nad(annotations={"keep": "1", "drop": "2"}))
    out = store.patch_annotations(NAD, "multus-test", "bridge-dev",
                                  {"drop": None, "new": "3", "absent": None})
    assert out.annotations == {"keep": "1", "new": "3"}
    out = store.patch_annotations(NAD, "multus-test", "bridge-dev",
                                  {"keep": None, "new": None})
    assert "annotations" not in out.metadata  # empty maps are not stored
    with pytest.raises(NotFound):
        store.patch_annotations(NAD, "multus-test", "nope", {"a": "b"})


def test_patch_without_change_keeps_version(store: Store) -> None:
    created = store.create(nad(annotations={"a": "1"}))
    same = store.patch_annotations(NAD, "multus-test", "bridge-dev", {"a": "1"})
    assert same.resource_version == created.resource_version


def test_delete_returns_object_and_second_delete_is_not_found(store: Store) -> None:
    store.create(nad())
    gone = store.delete(NAD, "multus-test", "bridge-dev")
    assert gone.name == "bridge-dev"
    with pytest.raises(NotFound):
        store.delete(NAD, "multus-test", "bridge-dev")
    assert store.list(NAD) == []


def test_apply_outcomes(store: Store) -> None:
    created, outcome = store.apply_outcome(nad())
    assert outcome == "created"
    assert LAST_APPLIED in created.annotations
    same, outcome = store.apply_outcome(nad())
    assert outcome == "unchanged"
    assert same.resource_version == created.resource_version
    changed, outcome = store.apply_outcome(nad(config='{"type": "bridge"}'))
    assert outcome == "configured"
    assert changed.uid == created.uid
    assert changed.metadata["generation"] == 2
    assert changed.creation_timestamp == created.creation_timestamp
    _, was_created = store.apply(nad(config='{"type": "macvlan"}'))
    assert was_created is False


def test_apply_keeps_status_and_annotations_written_by_others(store: Store) -> None:
    store.apply(nad(annotations={"mine": "1"}))
    store.patch_annotations(NAD, "multus-test", "bridge-dev", {"theirs": "x"})
    current = store.get(NAD, "multus-test", "bridge-dev")
    current.body["status"] = {"ok": True}
    store.update(current)
    # The new manifest drops "mine": apply removes what it set before, keeps the rest.
    out, outcome = store.apply_outcome(nad(annotations={"other": "2"}))
    assert outcome == "configured"
    assert out.annotations.get("theirs") == "x"
    assert "mine" not in out.annotations
    assert out.annotations["other"] == "2"
    assert out.status == {"ok": True}


def test_store_file_is_wal_with_one_objects_table(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    s = open_store(str(path))
    s.create(nad())
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = [r[1] for r in conn.execute("PRAGMA table_info(objects)")]
        assert cols == ["kind", "namespace", "name", "uid", "created", "resource_version",
                        "body"]
        pk = [r[1] for r in sorted(conn.execute("PRAGMA table_info(objects)"),
                                    key=lambda r: r[5]) if r[5]]
        assert pk == ["kind", "namespace", "name"]
    finally:
        conn.close()
        s.close()


def test_store_path_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIHOME_STORE", "/tmp/env.db")
    assert store_path("/tmp/arg.db") == "/tmp/arg.db"
    assert store_path() == "/tmp/env.db"
    monkeypatch.delenv("MULTIHOME_STORE")
    assert store_path() == "/var/lib/multihome/store.db"


def test_open_store_creates_parent_directories(tmp_path: Path) -> None:
    s = open_store(str(tmp_path / "a" / "b" / "s.db"))
    s.create(nad())
    s.close()
    assert (tmp_path / "a" / "b" / "s.db").exists()


def test_manifest_without_name_or_kind_is_invalid() -> None:
    with pytest.raises(InvalidObject, match="no 'kind'"):
        Object.from_manifest({"metadata": {"name": "a"}})
    with pytest.raises(InvalidObject, match=r"metadata\.name"):
        Object.from_manifest({"kind": NAD, "metadata": {}})
    with pytest.raises(InvalidObject, match="annotations"):
        Object.from_manifest({"kind": NAD, "metadata": {"name": "a", "annotations": {"a": 1}}})


def test_resolve_kind_aliases() -> None:
    for alias in ("net-attach-def", "network-attachment-definitions", "nad",
                  "networkattachmentdefinition", "NetworkAttachmentDefinition",
                  "networkattachmentdefinitions.k8s.cni.cncf.io"):
        assert resolve_kind(alias) == NAD
    for alias in ("pod", "pods", "po"):
        assert resolve_kind(alias) == POD
    with pytest.raises(UnknownKind, match='resource type "foo"'):
        resolve_kind("foo")
    info = kind_info(NAD)
    assert info.resource == "networkattachmentdefinitions.k8s.cni.cncf.io"
    assert info.ref("x") == "networkattachmentdefinition.k8s.cni.cncf.io/x"
    assert kind_info("po").ref("x") == "pod/x"


# -- several processes on one file --------------------------------------------------


def _increment(path: str, worker: int, rounds: int) -> None:
    """Read-modify-write a counter annotation with optimistic concurrency, retrying."""
    s = open_store(path)
    try:
        for _ in range(rounds):
            while True:
                obj = s.get(NAD, "ns", "counter")
                n = int(obj.annotations.get("count", "0"))
                obj.annotations["count"] = str(n + 1)
                try:
                    s.update(obj, expected_version=obj.resource_version)
                    break
                except Conflict:
                    continue
            s.patch_annotations(NAD, "ns", "counter", {f"worker-{worker}": "seen"})
            s.create(nad(f"w{worker}-{_}", "ns"))
    finally:
        s.close()


def test_concurrent_processes_never_lose_updates(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    s = open_store(path)
    s.create(nad("counter", "ns"))
    workers, rounds = 4, 25
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_increment, args=(path, w, rounds)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * workers
    final = s.get(NAD, "ns", "counter")
    assert final.annotations["count"] == str(workers * rounds)
    assert all(final.annotations[f"worker-{w}"] == "seen" for w in range(workers))
    assert len(s.list(NAD, "ns")) == 1 + workers * rounds
    s.close()


def test_store_used_after_fork_reconnects(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    s = open_store(path)
    s.create(nad("parent", "ns"))
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=lambda: s.create(nad("child", "ns")))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert [o.name for o in s.list(NAD, "ns")] == ["child", "parent"]
    s.close()


def test_a_store_file_readable_by_others_is_made_private_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    open_store(str(path)).close()
    os.chmod(path, 0o644)  # as an older release or a copy left it
    open_store(str(path)).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
