"""The storage contract: Kubernetes-style objects and the operations the engine and CLI need.

Backends implement :class:`Store`: the embedded SQLite file (store.sqlite) and the
Kubernetes API (k8s.store). Only :mod:`multihome.stores`, which opens one by the name a
user or a config gives, knows which is in use; everything else holds a Store.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from multihome.store import names

Outcome = Literal["created", "configured", "unchanged"]

# Annotation `kubectl apply` keeps so a later apply knows which keys it owns.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class StoreError(Exception):
    """Base of every store failure."""


class StoreUnavailable(StoreError):
    """The store file cannot be used at all (corrupt, a directory, not writable); the
    message names the file and what to do, on one line."""


class NotFound(StoreError, LookupError):
    """The object does not exist."""

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        self.kind, self.namespace, self.name = kind, namespace, name
        where = f' in namespace "{namespace}"' if namespace else ""
        super().__init__(f'{kind.lower()} "{name}" not found{where}')


class AlreadyExists(StoreError):
    """`create` of an object that exists."""

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        self.kind, self.namespace, self.name = kind, namespace, name
        where = f' in namespace "{namespace}"' if namespace else ""
        super().__init__(f'{kind.lower()} "{name}" already exists{where}')


class Conflict(StoreError):
    """`update` with an ``expected_version`` that is no longer current."""

    def __init__(self, kind: str, namespace: str, name: str, expected: int, actual: int) -> None:
        self.kind, self.namespace, self.name = kind, namespace, name
        self.expected, self.actual = expected, actual
        super().__init__(
            f'Operation cannot be fulfilled on {kind.lower()} "{name}": the object has been '
            f"modified (resourceVersion {actual}, expected {expected}); please apply your "
            "changes to the latest version and try again"
        )


class InvalidObject(StoreError, ValueError):
    """A manifest that is not a usable object (no kind, no name, wrong types)."""


class InvalidObjectName(InvalidObject):
    """The object's name or namespace breaks the DNS-1123 rules (see store.names)."""


def check_ref(namespace: str | None, name: str | None, kind: str = "") -> None:
    """InvalidObjectName unless `namespace` (when set) is a DNS-1123 label and `name`
    (when given) a DNS-1123 subdomain: what every store checks before it writes, and the
    Kubernetes store before a name becomes part of an API path."""
    what = f"{kind} name" if kind else "name"
    problem = (names.label_problem(namespace, "namespace") if namespace else None) or (
        names.subdomain_problem(name, what) if name is not None else None)
    if problem:
        raise InvalidObjectName(problem)


def format_timestamp(when: datetime) -> str:
    """RFC 3339 in UTC with second precision, as the API server writes it."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def json_problem(value: Any) -> str | None:
    """Why `value` cannot be stored as JSON (a non-string key, NaN, a Python-only type),
    as a sentence naming where; None when it can. Iterative: any depth is safe here."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    return f"key {k!r} in {where or 'the object'} is not a string"
                stack.append((f"{where}.{k}" if where else k, v))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{where} is {item}, which JSON cannot hold"
        elif not isinstance(item, str | int | float | bool) and item is not None:
            return f"{where} holds a {type(item).__name__}, which JSON cannot hold"
    return None


@dataclass
class Object:
    """A Kubernetes-style object of any kind; ``body`` is the whole manifest."""

    kind: str
    name: str
    namespace: str  # "" for cluster-scoped kinds
    body: dict[str, Any]

    def __post_init__(self) -> None:
        # Keep the identity fields and the manifest in agreement from the start.
        self.body.setdefault("kind", self.kind)
        meta = self.metadata
        meta["name"] = self.name
        if self.namespace:
            meta["namespace"] = self.namespace
        else:
            meta.pop("namespace", None)

    @classmethod
    def from_manifest(cls, body: dict[str, Any], namespace: str = "") -> Object:
        """Build from a parsed manifest; ``namespace`` is used when the manifest has none."""
        if not isinstance(body, dict):
            raise InvalidObject("object must be a mapping")
        kind = body.get("kind")
        if not isinstance(kind, str) or not kind:
            raise InvalidObject("object has no 'kind'")
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            raise InvalidObject(f"{kind} has no 'metadata'")
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidObject(f"{kind} has no 'metadata.name'")
        ns = meta.get("namespace") or namespace
        if not isinstance(ns, str):
            raise InvalidObject(f"{kind} {name}: 'metadata.namespace' must be a string")
        for key in ("annotations", "labels"):
            value = meta.get(key)
            if value is not None and not (
                isinstance(value, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
            ):
                raise InvalidObject(f"{kind} {name}: 'metadata.{key}' must map strings to strings")
        problem = json_problem(body)
        if problem:
            raise InvalidObject(f"{kind} {name}: {problem}")
        return cls(kind, name, ns, copy.deepcopy(body))

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.body.setdefault("metadata", {})
        assert isinstance(meta, dict)
        return meta

    @property
    def annotations(self) -> dict[str, str]:
        """The live annotations mapping (edits change ``body``)."""
        ann = self.metadata.setdefault("annotations", {})
        assert isinstance(ann, dict)
        return ann

    @property
    def labels(self) -> dict[str, str]:
        lab = self.metadata.setdefault("labels", {})
        assert isinstance(lab, dict)
        return lab

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def status(self) -> dict[str, Any]:
        status = self.body.get("status")
        return status if isinstance(status, dict) else {}

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid", ""))

    @property
    def resource_version(self) -> int:
        try:
            return int(self.metadata.get("resourceVersion", 0))
        except (TypeError, ValueError):
            return 0

    @property
    def creation_timestamp(self) -> datetime | None:
        ts = self.metadata.get("creationTimestamp")
        return parse_timestamp(ts) if isinstance(ts, str) else None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    def copy(self) -> Object:
        return Object(self.kind, self.name, self.namespace, copy.deepcopy(self.body))


@runtime_checkable
class Store(Protocol):
    """What the engine, the daemon and the CLI may ask of a backend."""

    def get(self, kind: str, namespace: str, name: str) -> Object:
        """Raises NotFound."""
        ...

    def list(self, kind: str, namespace: str | None = None) -> list[Object]:
        """Objects of ``kind``, sorted by namespace then name; ``None`` = all namespaces."""
        ...

    def create(self, obj: Object) -> Object:
        """Raises AlreadyExists; sets uid, creationTimestamp, resourceVersion."""
        ...

    def apply(self, obj: Object) -> tuple[Object, bool]:
        """Create, or replace what the manifest says (status and others' annotations kept).

        The flag is True when the object was created.
        """
        ...

    def apply_outcome(self, obj: Object) -> tuple[Object, Outcome]:
        """Like :meth:`apply`, telling "created", "configured" or "unchanged" (for the CLI)."""
        ...

    def update(self, obj: Object, *, expected_version: int | None = None) -> Object:
        """Replace the stored body; raises NotFound, and Conflict on a stale version."""
        ...

    def patch_annotations(
        self, kind: str, namespace: str, name: str, annotations: dict[str, str | None]
    ) -> Object:
        """Set annotations atomically; a ``None`` value removes the key. Raises NotFound."""
        ...

    def delete(self, kind: str, namespace: str, name: str) -> Object:
        """Raises NotFound; returns the object as it was."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class EventSink(Protocol):
    """Where events about a pod go, as Multus records them: the Kubernetes API store
    writes Event objects; stores without events (SQLite) simply are not sinks. The
    engine calls it where Multus emits its events, never the store on its own."""

    def record_event(self, pod: Object | tuple[str, str], reason: str, message: str,
                     event_type: str = "Normal") -> None: ...
