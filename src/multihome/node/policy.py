"""NNCP → enactment on the local node → NNCE conditions and the refreshed NNS.

`multihome apply -f policy.yml` only stores the policy (as the API server would);
`multihome node enact` is the node handler's reconcile step: for each policy whose
nodeSelector matches this node it rolls back any leftover checkpoint, applies with
probes, and records the outcome in `<node>.<policy>`.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from multihome.cni.errors import CNIError
from multihome.node import current, engine, schema
from multihome.node.kinds import NNCE, NNCP, NNS
from multihome.store import NODE, NotFound, Object, Store
from multihome.store.base import format_timestamp

NODE_NAME_ENV = "MULTIHOME_NODE_NAME"
CONDITION_TYPES = ("Available", "Failing", "Progressing", "Pending", "Aborted")
# interfaces kubernetes-nmstate leaves out of NodeNetworkState (pods' host-side veths)
NNS_FILTERED_PREFIXES = ("veth",)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def node_name(explicit: str | None = None) -> str:
    return explicit or os.environ.get(NODE_NAME_ENV) or socket.gethostname()


def node_labels(store: Store, node: str) -> dict[str, str]:
    labels = {"kubernetes.io/hostname": node}
    with contextlib.suppress(NotFound):
        labels.update(store.get(NODE, "", node).labels)
    return labels


def selects(policy: Object, labels: dict[str, str]) -> bool:
    selector = policy.spec.get("nodeSelector") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def validate_policy(obj: Object) -> None:
    """Admission for NNCPs: the desired state must follow the schema."""
    selector = obj.spec.get("nodeSelector")
    if selector is not None and not (isinstance(selector, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in selector.items())):
        raise ValueError("spec.nodeSelector must map label names to strings")
    try:
        schema.validate(obj.spec.get("desiredState"))
    except schema.InvalidDesiredState as e:
        raise ValueError(f"spec.desiredState.{e}") from e


def conditions(active: str, reason: str, message: str) -> list[dict[str, str]]:
    now = format_timestamp(datetime.now(UTC))
    return [{"type": t, "status": "True" if t == active else "False",
             "reason": reason if t == active else "", "message": message if t == active else "",
             "lastTransitionTime": now, "lastHeartbeatTime": now} for t in CONDITION_TYPES]


def active_condition(obj: Object) -> tuple[str, str, str]:
    """(type, reason, message) of the condition that is True."""
    for cond in obj.status.get("conditions") or []:
        if cond.get("status") == "True":
            return str(cond["type"]), str(cond.get("reason", "")), str(cond.get("message", ""))
    return "", "", ""


def _put(store: Store, obj: Object) -> Object:
    try:
        old = store.get(obj.kind, obj.namespace, obj.name)
    except NotFound:
        return store.create(obj)
    old.body["status"] = obj.body.get("status", {})
    old.labels.update(obj.labels)
    return store.update(old)


def _set_enactment(store: Store, node: str, policy: Object, active: str, reason: str,
                   message: str) -> Object:
    name = f"{node}.{policy.name}"
    body: dict[str, Any] = {
        "apiVersion": "nmstate.io/v1beta1", "kind": NNCE,
        "metadata": {"name": name, "labels": {"nmstate.io/node": node,
                                              "nmstate.io/policy": policy.name}},
        "status": {"desiredState": policy.spec.get("desiredState") or {},
                   "policyGeneration": policy.resource_version,
                   "conditions": conditions(active, reason, message)},
    }
    return _put(store, Object(NNCE, name, "", body))


def refresh_state(store: Store, node: str, netns_path: str | None = None) -> Object:
    """Write the node's NodeNetworkState (only when the state changed)."""
    state = current.show(netns_path)
    state["interfaces"] = [i for i in state["interfaces"]
                           if not i["name"].startswith(NNS_FILTERED_PREFIXES)]
    try:
        old = store.get(NNS, "", node)
        if old.status.get("currentState") == state:
            return old
    except NotFound:
        pass
    body = {"apiVersion": "nmstate.io/v1beta1", "kind": NNS, "metadata": {"name": node},
            "status": {"currentState": state,
                       "lastSuccessfulUpdateTime": format_timestamp(datetime.now(UTC))}}
    return _put(store, Object(NNS, node, "", body))


def _policy_status(store: Store, policy: Object) -> None:
    enactments = [e for e in store.list(NNCE, None)
                  if e.labels.get("nmstate.io/policy") == policy.name]
    states = [active_condition(e)[0] for e in enactments]
    failing = states.count("Failing")
    if failing:
        active, reason, msg = ("Degraded", "FailedToConfigure",
                               f"{failing}/{len(states)} nodes failed to configure")
    elif states and all(s == "Available" for s in states):
        active, reason, msg = ("Available", "SuccessfullyConfigured",
                               f"{len(states)}/{len(states)} nodes successfully configured")
    else:
        active, reason, msg = ("Progressing", "ConfigurationProgressing", "")
    now = format_timestamp(datetime.now(UTC))
    policy = store.get(NNCP, "", policy.name)
    policy.body["status"] = {"conditions": [
        {"type": t, "status": "True" if t == active else "False",
         "reason": reason if t == active else "", "message": msg if t == active else "",
         "lastTransitionTime": now} for t in ("Available", "Degraded", "Progressing")]}
    store.update(policy)


def enact(store: Store, names: list[str] | None = None, *, node: str | None = None,
          netns_path: str | None = None, progress: Progress = _quiet) -> list[Object]:
    """Enact the named policies (default: all) that select this node; returns the NNCEs."""
    node = node_name(node)
    labels = node_labels(store, node)
    policies = [store.get(NNCP, "", n) for n in names] if names else store.list(NNCP, None)
    out: list[Object] = []
    for policy in policies:
        if not selects(policy, labels):
            progress(f"policy {policy.name}: nodeSelector does not match node {node}")
            continue
        _set_enactment(store, node, policy, "Progressing", "ConfigurationProgressing",
                       "applying desired state")
        try:
            report = engine.apply_state(policy.spec.get("desiredState") or {},
                                        netns_path=netns_path, leftover="rollback")
        except CNIError as e:
            progress(f"policy {policy.name}: failed: {e}")
            nnce = _set_enactment(store, node, policy, "Failing", "FailedToConfigure", str(e))
        else:
            for line in report.changes:
                progress(f"policy {policy.name}: {line}")
            msg = "successfully reconciled" if report.changes else \
                "successfully reconciled (no changes needed)"
            nnce = _set_enactment(store, node, policy, "Available", "SuccessfullyConfigured",
                                  msg)
        out.append(nnce)
        _policy_status(store, policy)
    refresh_state(store, node, netns_path)
    return out
