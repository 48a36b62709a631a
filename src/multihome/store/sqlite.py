"""The embedded store: one SQLite file, safe for the CLI and a daemon at the same time.

WAL lets readers run while one process writes; every read-modify-write runs inside
``BEGIN IMMEDIATE`` so two processes never interleave their updates of one object.
Resource versions come from one global counter, like etcd revisions, so a later watch
can ask for "everything after version N".
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sqlite3
import stat
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from multihome.store import shared
from multihome.store.base import (
    AlreadyExists,
    Conflict,
    NotFound,
    Object,
    Outcome,
    StoreUnavailable,
    check_ref,
    format_timestamp,
)
from multihome.store.events import EVENT, event_body
from multihome.store.merge import merge_apply, normalize
from multihome.store.shared import Registry

BUSY_TIMEOUT_S = 30.0
MAX_EVENTS_PER_POD = 50

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    created TEXT NOT NULL,
    resource_version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS revision (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO revision (id, value) VALUES (0, 0);
"""


class SQLiteStore:
    """:class:`multihome.store.base.Store` on a local SQLite file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._in_transaction = False
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self.shared = False
        self.file_id: tuple[int, int] | None = None  # (st_dev, st_ino) when shared
        self._connect()

    # -- connection ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        with self._unavailable():
            return self._open()

    @contextlib.contextmanager
    def _unavailable(self) -> Iterator[None]:
        """sqlite3 and OS errors as StoreUnavailable: one line naming the file and what to
        do (a traceback or "unable to open database file" tells a person neither)."""
        try:
            yield
        except sqlite3.Error as e:
            raise StoreUnavailable(unusable_store_message(self.path, e)) from None
        except OSError as e:
            raise StoreUnavailable(
                f"the store {self.path} cannot be created: {e.strerror or e}; pass --store "
                "(or set MULTIHOME_STORE) with a path in a writable directory") from None

    def _open(self) -> sqlite3.Connection:
        # A connection inherited over fork() must not be used by the child.
        _create_private(self.path)
        conn = sqlite3.connect(
            str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Reads and writes inside run as one transaction holding the database's write
        lock from the start: what they read cannot change before what they write commits
        (the cluster-wide IPAM allocates this way, with no lost race to retry). Other
        threads of the process wait for it; nested, it is part of the outer one."""
        with self._lock:
            if self._in_transaction:
                yield
                return
            conn = self._connect()
            with self._unavailable():
                conn.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._in_transaction = False
            with self._unavailable():
                conn.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the database's write lock from the start."""
        with self._lock:
            conn = self._connect()
            if self._in_transaction:  # part of transaction(): it commits or rolls back
                with self._unavailable():
                    yield conn
                return
            with self._unavailable():
                conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except sqlite3.Error as e:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise StoreUnavailable(unusable_store_message(self.path, e)) from None
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            with self._unavailable():
                conn.execute("COMMIT")

    def close(self) -> None:
        if self.shared:
            return  # the process-wide store outlives each request that opened it
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------

    @staticmethod
    def _row_to_object(row: tuple[str, str, str, str]) -> Object:
        kind, namespace, name, body = row
        return Object(kind, name, namespace, json.loads(body))

    @staticmethod
    def _fetch(conn: sqlite3.Connection, kind: str, namespace: str, name: str) -> Object | None:
        row = conn.execute(
            "SELECT kind, namespace, name, body FROM objects "
            "WHERE kind = ? AND namespace = ? AND name = ?",
            (kind, namespace, name),
        ).fetchone()
        return SQLiteStore._row_to_object(row) if row else None

    @staticmethod
    def _next_revision(conn: sqlite3.Connection) -> int:
        conn.execute("UPDATE revision SET value = value + 1 WHERE id = 0")
        row = conn.execute("SELECT value FROM revision WHERE id = 0").fetchone()
        return int(row[0])

    def _write_object(self, conn: sqlite3.Connection, obj: Object, *, insert: bool) -> Object:
        if insert:
            check_ref(obj.namespace, obj.name, obj.kind)
        rv = self._next_revision(conn)
        obj.metadata["resourceVersion"] = str(rv)
        normalize(obj.body)
        body = json.dumps(obj.body, sort_keys=True, separators=(",", ":"))
        if insert:
            conn.execute(
                "INSERT INTO objects (kind, namespace, name, uid, created, resource_version, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (obj.kind, obj.namespace, obj.name, obj.uid,
                 obj.metadata["creationTimestamp"], rv, body),
            )
        else:
            conn.execute(
                "UPDATE objects SET resource_version = ?, body = ? "
                "WHERE kind = ? AND namespace = ? AND name = ?",
                (rv, body, obj.kind, obj.namespace, obj.name),
            )
        return obj.copy()

    @staticmethod
    def _stamp_new(obj: Object) -> Object:
        new = obj.copy()
        meta = new.metadata
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = format_timestamp(datetime.now(UTC))
        meta["generation"] = 1
        return new

    # -- Store --------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> Object:
        with self._lock, self._unavailable():
            obj = self._fetch(self._connect(), kind, namespace, name)
        if obj is None:
            raise NotFound(kind, namespace, name)
        return obj

    def list(self, kind: str, namespace: str | None = None) -> list[Object]:
        sql = "SELECT kind, namespace, name, body FROM objects WHERE kind = ?"
        params: tuple[Any, ...] = (kind,)
        if namespace is not None:
            sql += " AND namespace = ?"
            params += (namespace,)
        sql += " ORDER BY namespace, name"
        with self._lock, self._unavailable():
            rows = self._connect().execute(sql, params).fetchall()
        return [self._row_to_object(r) for r in rows]

    def create(self, obj: Object) -> Object:
        with self._write() as conn:
            if self._fetch(conn, obj.kind, obj.namespace, obj.name) is not None:
                raise AlreadyExists(obj.kind, obj.namespace, obj.name)
            return self._write_object(conn, self._stamp_new(obj), insert=True)

    def apply(self, obj: Object) -> tuple[Object, bool]:
        stored, outcome = self.apply_outcome(obj)
        return stored, outcome == "created"

    def apply_outcome(self, obj: Object) -> tuple[Object, Outcome]:
        with self._write() as conn:
            current = self._fetch(conn, obj.kind, obj.namespace, obj.name)
            if current is None:
                new = self._stamp_new(obj)
                new.body = merge_apply({"metadata": new.metadata}, new.body)
                return self._write_object(conn, new, insert=True), "created"
            body = normalize(merge_apply(current.body, obj.body))
            if body == current.body:
                return current, "unchanged"
            if body.get("spec") != current.body.get("spec"):
                body["metadata"]["generation"] = int(current.metadata.get("generation", 1)) + 1
            new = Object(obj.kind, obj.name, obj.namespace, body)
            return self._write_object(conn, new, insert=False), "configured"

    def update(self, obj: Object, *, expected_version: int | None = None) -> Object:
        with self._write() as conn:
            current = self._fetch(conn, obj.kind, obj.namespace, obj.name)
            if current is None:
                raise NotFound(obj.kind, obj.namespace, obj.name)
            if expected_version is not None and expected_version != current.resource_version:
                raise Conflict(obj.kind, obj.namespace, obj.name, expected_version,
                               current.resource_version)
            new = obj.copy()
            for key in ("uid", "creationTimestamp"):
                new.metadata[key] = current.metadata[key]
            generation = int(current.metadata.get("generation", 1))
            if new.body.get("spec") != current.body.get("spec"):
                generation += 1
            new.metadata["generation"] = generation
            return self._write_object(conn, new, insert=False)

    def patch_annotations(
        self, kind: str, namespace: str, name: str, annotations: dict[str, str | None]
    ) -> Object:
        with self._write() as conn:
            current = self._fetch(conn, kind, namespace, name)
            if current is None:
                raise NotFound(kind, namespace, name)
            ann = current.annotations
            before = copy.deepcopy(ann)
            for key, value in annotations.items():
                if value is None:
                    ann.pop(key, None)
                else:
                    ann[key] = value
            if ann == before:
                return normalize_object(current)
            return self._write_object(conn, current, insert=False)

    def delete(self, kind: str, namespace: str, name: str) -> Object:
        with self._write() as conn:
            current = self._fetch(conn, kind, namespace, name)
            if current is None:
                raise NotFound(kind, namespace, name)
            conn.execute(
                "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                (kind, namespace, name),
            )
            return current

    # -- events ------------------------------------------------------------------------

    def record_event(self, pod: Object | tuple[str, str], reason: str, message: str,
                     event_type: str = "Normal") -> None:
        """An Event object about a pod (the lab's `pod describe` lists them); the oldest go
        past MAX_EVENTS_PER_POD, as the API server lets events expire."""
        obj = Object.from_manifest(event_body(pod, reason, message, event_type))
        ns, name = obj.body["involvedObject"]["namespace"], obj.body["involvedObject"]["name"]
        self.create(obj)
        # the pod's events are named `<pod>.<hex>`: read those rows only, not the namespace's
        prefix = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%"
        where = "kind = ? AND namespace = ? AND name LIKE ? ESCAPE '\\'"
        with self._lock, self._unavailable():
            # counted first: the rows (and their JSON) are read only when there may be
            # some to drop, not on every event (the count includes other pods' events
            # whose names share the prefix, so it is an upper bound)
            (count,) = self._connect().execute(
                f"SELECT COUNT(*) FROM objects WHERE {where}", (EVENT, ns, prefix)).fetchone()
            if count <= MAX_EVENTS_PER_POD:
                return
            # which are this pod's, asked of SQLite's JSON functions: decoding every
            # event in Python cost each event of a busy pod ~MAX_EVENTS_PER_POD loads
            rows = self._connect().execute(
                f"SELECT name FROM objects WHERE {where} "
                "AND json_extract(body, '$.involvedObject.kind') = 'Pod' "
                "AND json_extract(body, '$.involvedObject.namespace') = ? "
                "AND json_extract(body, '$.involvedObject.name') = ? "
                "ORDER BY resource_version", (EVENT, ns, prefix, ns, name)).fetchall()
        for (old,) in rows[:-MAX_EVENTS_PER_POD]:
            with contextlib.suppress(NotFound):
                self.delete(EVENT, ns, old)


def _create_private(path: Path) -> None:
    """Make the store's directory (0700) and file (0600) if missing: objects hold pod and
    network details that other local users have no business reading. SQLite gives its
    -wal and -shm files the mode of the database file."""
    missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    for d in reversed(missing):  # makedirs' mode covers only the last level
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)
    if not path.exists() and not path.is_symlink():
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                             0o600))
    # a store file of ours made readable by others (an older release, a copy, a umask):
    # closed again before anything is read from or written to it
    with contextlib.suppress(OSError):
        st = os.stat(path, follow_symlinks=False)
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
            os.chmod(path, 0o600)


def _read_only(path: Path) -> bool:
    """On a read-only mount, or not writable by us (as root only the mount counts)."""
    try:
        on_ro_mount = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False
    return on_ro_mount or (path.exists() and not os.access(path, os.W_OK))


def unusable_store_message(path: Path, err: sqlite3.Error) -> str:
    """What is wrong with the store file and what to do, as one line."""
    text = str(err)
    if path.is_dir():
        why = "is a directory; pass --store (or MULTIHOME_STORE) with a file path"
    elif "not a database" in text or "malformed" in text or "corrupt" in text:
        why = ("is not a multihome store (corrupt, or another kind of file); move it away "
               "to start an empty store, or pass --store with another path")
    elif "readonly" in text or "read-only" in text or _read_only(path):
        why = ("is read-only; run as a user who may write it, or pass --store with a "
               "writable path")
    elif "unable to open" in text or not os.access(path.parent, os.W_OK | os.X_OK):
        why = ("cannot be opened; check that it and its directory exist and are readable "
               "and writable by this user")
    else:
        why = f"cannot be used ({' '.join(text.split())})"
    return f"the store {path} {why}"


def normalize_object(obj: Object) -> Object:
    normalize(obj.body)
    return obj


_SHARED: Registry[str, SQLiteStore] = Registry()


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def open_sqlite(path: str) -> SQLiteStore:
    """The store in file `path`: the process's shared one after :func:`keep_open`."""
    return shared_store(path) if shared.keeping_open() else SQLiteStore(path)


def shared_store(path: str) -> SQLiteStore:
    """One store per file for a long-lived process (the daemon opens one per request).
    A file that was removed or replaced since (`lab down`, a restore) gets a new one."""

    def make() -> SQLiteStore:
        store = SQLiteStore(path)
        store.file_id = _file_id(path)
        return store

    ident = _file_id(path)
    return _SHARED.get(path, make, lambda s: ident is not None and s.file_id == ident)
