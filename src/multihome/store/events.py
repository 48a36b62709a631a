"""Event objects about pods, one shape for every store: what Multus (and the
dynamic-networks controller) record and `kubectl describe pod` shows under Events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from multihome.store.base import Object, Store, format_timestamp

EVENT = "Event"


def event_body(pod: Object | tuple[str, str], reason: str, message: str, event_type: str,
               host: str = "") -> dict[str, Any]:
    ns, name = (pod.namespace, pod.name) if isinstance(pod, Object) else pod
    uid = pod.uid if isinstance(pod, Object) else ""
    now = format_timestamp(datetime.now(UTC))
    return {
        "apiVersion": "v1", "kind": EVENT,
        "metadata": {"name": f"{name}.{uuid.uuid4().hex[:16]}", "namespace": ns},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": ns,
                           "name": name, "uid": uid},
        "reason": reason, "message": message, "type": event_type,
        "source": {"component": "multus", "host": host},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }


def is_about(event: Object, namespace: str, name: str) -> bool:
    inv = event.body.get("involvedObject")
    return isinstance(inv, dict) and inv.get("kind") == "Pod" \
        and inv.get("namespace") == namespace and inv.get("name") == name


def events_of(store: Store, namespace: str, name: str) -> list[Object]:
    """The events about one pod, as the store keeps them (none in a store without)."""
    return [e for e in store.list(EVENT, namespace) if is_about(e, namespace, name)]
