"""NNCP → enactment on the local node → NNCE conditions and the refreshed NNS.

`multihome apply -f policy.yml` only stores the policy (as the API server would);
`multihome node enact` is the node handler's reconcile step: for each policy whose
nodeSelector matches this node it takes an unavailable-node slot (maxUnavailable, see
rollout.py; none free: Pending, or Aborted when failed nodes fill them), rolls back any
leftover checkpoint, applies with probes (retrying when the policy asks for it), and
records the outcome in `<node>.<policy>`. A policy with `spec.capture` has its captures
resolved against the node's current state first (capture.py) and its `{{ capture.… }}`
references expanded; the enactment shows the captured states and the resolved desired
state, keeps them for the policy's generation, and fails (changing nothing) when they
cannot be resolved. A policy that no longer selects the node loses
that enactment; the node keeps its configuration, as with kubernetes-nmstate. A policy
that selects no node at all (of the Nodes the store lists, and this one) is marked
`Ignored` (reason NoMatchingNode) until a node matches.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from multihome.errors import MultihomeError
from multihome.node import capture, current, probes, rollout, schema, transaction
from multihome.store import NODE, Conflict, NotFound, Object, Store, StoreError
from multihome.store.base import format_timestamp
from multihome.store.objects import NNCE, NNCP, NNS

NODE_NAME_ENV = "MULTIHOME_NODE_NAME"
CONDITION_TYPES = ("Available", "Failing", "Progressing", "Pending", "Aborted")
POLICY_CONDITION_TYPES = ("Available", "Degraded", "Progressing", "Ignored")
NO_MATCHING_NODE = "NoMatchingNode"
GENERATOR_VERSION = "multihome-nmpolicy/1"  # desiredStateMetaInfo.version
# what one apply attempt came to (the daemon counts them on /metrics)
APPLY_RESULTS = ("applied", "rolled_back", "failed")
# interfaces kubernetes-nmstate leaves out of NodeNetworkState (pods' host-side veths)
NNS_FILTERED_PREFIXES = ("veth",)

Progress = Callable[[str], None]
ApplyObserver = Callable[[str], None]  # called with one of APPLY_RESULTS per attempt


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
    """Whether the policy's nodeSelector matches `labels`; ValueError when it is not a map
    of strings (the policy is invalid: nothing is enacted for it)."""
    selector = policy.spec.get("nodeSelector") or {}
    _check_selector(selector)
    return all(labels.get(k) == v for k, v in selector.items())


def known_node_labels(store: Store, node: str, labels: dict[str, str]
                      ) -> dict[str, dict[str, str]]:
    """Labels of every node the store lists (each with its kubernetes.io/hostname, as
    node_labels gives it), and of this node even when it has no Node object (the lab)."""
    out = {n.name: {"kubernetes.io/hostname": n.name, **n.labels}
           for n in store.list(NODE, None)}
    out[node] = labels
    return out


def selects_no_node(policy: Object, known: dict[str, dict[str, str]]) -> bool:
    """`known`: from known_node_labels (listed once for all the policies of a pass)."""
    return not any(selects(policy, labels) for labels in known.values())


def is_ignored(policy: Object) -> bool:
    return any(isinstance(c, dict) and c.get("type") == "Ignored" and c.get("status") == "True"
               for c in policy.status.get("conditions") or [])


def _check_selector(selector: Any) -> None:
    if selector is not None and not (isinstance(selector, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in selector.items())):
        raise ValueError("spec.nodeSelector must map label names to strings")


def validate_policy(obj: Object) -> None:
    """Admission for NNCPs (the CLI, the webhook and the node controller before it enacts
    anything): raises ValueError naming the first bad field."""
    if not isinstance(obj.body.get("spec"), dict):
        raise ValueError("spec must be an object")
    _check_selector(obj.spec.get("nodeSelector"))
    if "maxUnavailable" in obj.spec:
        rollout.validate_max_unavailable(obj.spec["maxUnavailable"])
    rollout.max_retries(obj)
    generation_raw = obj.metadata.get("generation", 1)
    if isinstance(generation_raw, bool) or not isinstance(generation_raw, int):
        raise ValueError("metadata.generation must be an integer")
    desired = obj.spec.get("desiredState")
    try:
        capture.check(obj.spec.get("capture"), desired)
    except capture.CaptureError as e:
        raise ValueError(f"spec.capture: {e}") from e
    if capture.has_references(desired):
        # the values of `{{ capture.… }}` exist only on a node, which checks the generated
        # state before it changes anything (as nmstate does); here the rest is checked
        desired = capture.without_references(desired)
    try:
        schema.validate(desired)
    except schema.InvalidDesiredState as e:
        raise ValueError(f"spec.desiredState.{e}") from e
    except (TypeError, AttributeError, KeyError, IndexError) as e:
        # a shape the schema walk did not foresee: still an invalid policy, not a crash
        raise ValueError(f"spec.desiredState is malformed ({type(e).__name__}: {e})") from e


def conditions(active: str, reason: str, message: str) -> list[dict[str, str]]:
    now = format_timestamp(datetime.now(UTC))
    return [{"type": t, "status": "True" if t == active else "False",
             "reason": reason if t == active else "", "message": message if t == active else "",
             "lastTransitionTime": now, "lastHeartbeatTime": now} for t in CONDITION_TYPES]


def active_condition(obj: Object) -> tuple[str, str, str]:
    """(type, reason, message) of the condition that is True."""
    conds = obj.status.get("conditions")
    for cond in conds if isinstance(conds, list) else []:
        if isinstance(cond, dict) and cond.get("status") == "True" and "type" in cond:
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


def generation(policy: Object) -> int:
    value = policy.metadata.get("generation", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def _set_enactment(store: Store, node: str, policy: Object, active: str, reason: str,
                   message: str, retries: int | None = None,
                   generated: capture.Generated | None = None) -> Object:
    name = f"{node}.{policy.name}"
    gen = generation(policy)
    retry_count: dict[str, int] = {}
    with contextlib.suppress(NotFound):
        old = store.get(NNCE, "", name)
        if old.status.get("policyGeneration") == gen:
            retry_count = dict(old.status.get("retryCount") or {})
    if retries is not None:
        retry_count[str(gen)] = retries
    body: dict[str, Any] = {
        "apiVersion": "nmstate.io/v1beta1", "kind": NNCE,
        "metadata": {"name": name, "labels": {"nmstate.io/node": node,
                                              "nmstate.io/policy": policy.name}},
        "status": {"desiredState": policy.spec.get("desiredState") or {},
                   "policyGeneration": gen, "retryCount": retry_count,
                   "conditions": conditions(active, reason, message)},
    }
    if generated is not None:
        body["status"].update(generated_status(generated))
    return _put(store, Object(NNCE, name, "", body))


def generated_status(generated: capture.Generated) -> dict[str, Any]:
    """The NNCE status fields of a generated state, as kubernetes-nmstate writes them: the
    desired state with its references resolved and, with captures, each captured state."""
    now = format_timestamp(datetime.now(UTC))
    meta = {"time": now, "version": GENERATOR_VERSION}
    out: dict[str, Any] = {"desiredState": generated.desired or {}}
    if generated.captured:
        out["capturedStates"] = {name: {"state": state, "metaInfo": meta}
                                 for name, state in generated.captured.items()}
        out["desiredStateMetaInfo"] = meta
    return out


def cached_captures(store: Store, node: str, policy: Object) -> dict[str, Any]:
    """The captured states this node's enactment holds for the policy's generation: a
    later pass reuses them (the node changed since; the capture must not follow it)."""
    with contextlib.suppress(NotFound):
        old = store.get(NNCE, "", f"{node}.{policy.name}")
        if old.status.get("policyGeneration") == generation(policy):
            entries = old.status.get("capturedStates")
            if isinstance(entries, dict):
                return {name: entry["state"] for name, entry in entries.items()
                        if isinstance(entry, dict) and isinstance(entry.get("state"), dict)}
    return {}


def generate(store: Store, node: str, policy: Object,
             netns_path: str | None) -> capture.Generated:
    """The policy's desired state with its captures resolved on this node (CaptureError)."""
    desired = policy.spec.get("desiredState") or {}
    captures = policy.spec.get("capture")
    if not captures and not capture.has_references(desired):
        return capture.Generated({}, desired)
    return capture.generate(captures, desired, current.show(netns_path),
                            cached_captures(store, node, policy))


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


def _policy_status(store: Store, policy: Object, problem: str = "",
                   no_node: bool = False) -> None:
    """The policy's conditions from its enactments; `problem`: the policy itself is
    invalid or could not be enacted (Degraded with that message); `no_node`: no node
    matches its nodeSelector (Ignored while it has no enactment)."""
    states = [active_condition(e)[0] for e in rollout.enactments_of(store, policy.name)]
    failing, aborted = states.count("Failing"), states.count("Aborted")
    if problem:
        active, reason, msg = "Degraded", "FailedToConfigure", problem
    elif failing or aborted:
        active, reason, msg = ("Degraded", "FailedToConfigure",
                               f"{failing}/{len(states)} nodes failed to configure"
                               + (f", {aborted} aborted" if aborted else ""))
    elif states and all(s == "Available" for s in states):
        active, reason, msg = ("Available", "SuccessfullyConfigured",
                               f"{len(states)}/{len(states)} nodes successfully configured")
    elif no_node and not states:
        active, reason, msg = ("Ignored", NO_MATCHING_NODE,
                               f"policy {policy.name} does not match any node: no node "
                               "matches its nodeSelector")
    else:
        active, reason, msg = ("Progressing", "ConfigurationProgressing", "")
    now = format_timestamp(datetime.now(UTC))
    for attempt in itertools.count(1):
        policy = store.get(NNCP, "", policy.name)
        policy.body.setdefault("status", {})["conditions"] = [
            {"type": t, "status": "True" if t == active else "False",
             "reason": reason if t == active else "", "message": msg if t == active else "",
             "lastTransitionTime": now} for t in POLICY_CONDITION_TYPES]
        try:
            store.update(policy, expected_version=policy.resource_version)
            return
        except Conflict as e:  # another node updated the policy status meanwhile
            rollout.retry_on_conflict(attempt, e)


def _forget_enactment(store: Store, node: str, labels: dict[str, str], policy: Object,
                      progress: Progress) -> None:
    """kubernetes-nmstate deletes the enactment of a policy that no longer selects the node
    (the node keeps its configuration: deleting or narrowing a policy does not revert).
    When no node matches at all, the policy becomes Ignored (written once, not per pass)."""
    no_node = selects_no_node(policy, known_node_labels(store, node, labels))
    try:
        store.delete(NNCE, "", f"{node}.{policy.name}")
    except NotFound:
        if no_node and not is_ignored(policy) and not rollout.enactments_of(store,
                                                                            policy.name):
            progress(f"policy {policy.name}: no node matches its nodeSelector (Ignored)")
            _policy_status(store, policy, no_node=True)
        return
    progress(f"policy {policy.name}: enactment {node}.{policy.name} removed")
    _policy_status(store, policy, no_node=no_node)


def _held_slot(store: Store, node: str, policy: Object) -> bool:
    """This node already counts as unavailable for this generation (it failed before)."""
    with contextlib.suppress(NotFound):
        old = store.get(NNCE, "", f"{node}.{policy.name}")
        return (old.status.get("policyGeneration") == generation(policy)
                and active_condition(old)[0] in ("Failing", "Progressing"))
    return False


def _enact_one(store: Store, node: str, policy: Object, netns_path: str | None,
               progress: Progress, on_apply: ApplyObserver,
               probe_defaults: probes.Defaults | None = None) -> Object:
    name = f"{node}.{policy.name}"
    try:
        generated = generate(store, node, policy, netns_path)
    except capture.CaptureError as e:
        # nothing was changed: no slot is taken, no retry helps until the policy changes;
        # counted like a desired state the schema refuses (an attempt that applied nothing)
        on_apply("failed")
        progress(f"policy {policy.name}: {e}")
        return _set_enactment(store, node, policy, "Failing", "FailedToConfigure",
                              f"failure generating desiredState and capturedStates: {e}")
    held = _held_slot(store, node, policy)
    if not held:
        # the enactment exists (Pending) before the slot count: it is one of the nodes
        # maxUnavailable is scaled to
        _set_enactment(store, node, policy, "Pending", "", "waiting for an unavailable-node "
                       "slot", generated=generated)
        try:
            rollout.claim_slot(store, policy)
        except rollout.MaxUnavailableReached as e:
            failed, limit = rollout.failed_nodes(store, policy), rollout.max_unavailable(
                store, policy)
            if failed >= limit:
                return _set_enactment(
                    store, node, policy, "Aborted", "ConfigurationAborted",
                    f"reconciliation of enactment {name} has aborted: {failed} node(s) failed "
                    f"this policy, maxUnavailable is {limit}", generated=generated)
            return _set_enactment(store, node, policy, "Pending", "MaxUnavailableLimitReached",
                                  f"{e}; run `multihome node enact` again later",
                                  generated=generated)
    retries = rollout.max_retries(policy)
    attempt = 0
    while True:
        _set_enactment(store, node, policy, "Progressing", "ConfigurationProgressing",
                       "applying desired state", retries=attempt, generated=generated)
        try:
            report = transaction.apply_state(generated.desired, netns_path=netns_path,
                                             leftover="rollback",
                                             probe_defaults=probe_defaults)
            on_apply("applied")
            break
        except MultihomeError as e:
            # ApplyFailed: the node was changed and put back; anything else: not applied
            on_apply("rolled_back" if isinstance(e, transaction.ApplyFailed) else "failed")
            attempt += 1
            progress(f"policy {policy.name}: attempt {attempt} failed: {e}")
            retryable = not isinstance(e, schema.InvalidDesiredState)
            if not retryable or attempt > retries:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                return _set_enactment(store, node, policy, "Failing", "FailedToConfigure",
                                      f"failed{tries}: {e}", retries=attempt,
                                      generated=generated)
            _set_enactment(store, node, policy, "Progressing", "Retrying",
                           f"failed to reconcile policy {policy.name} on node {node}. "
                           f"Retrying {attempt + 1}/{retries + 1}: {e}", retries=attempt,
                           generated=generated)
            time.sleep(rollout.backoff(attempt))
    for line in report.changes:
        progress(f"policy {policy.name}: {line}")
    rollout.release_slot(store, policy)
    msg = "successfully reconciled" if report.changes else \
        "successfully reconciled (no changes needed)"
    return _set_enactment(store, node, policy, "Available", "SuccessfullyConfigured", msg,
                          retries=attempt, generated=generated)


def enact(store: Store, names: list[str] | None = None, *, node: str | None = None,
          netns_path: str | None = None, progress: Progress = _quiet,
          on_apply: ApplyObserver = _quiet,
          probe_defaults: probes.Defaults | None = None) -> list[Object]:
    """Enact the named policies (default: all) that select this node; returns the NNCEs.

    One policy never stops the others: an invalid one (a malformed nodeSelector,
    maxUnavailable or desiredState, as an API server without our schema may store) gets a
    Failing enactment and a Degraded condition with the reason, and the loop goes on.
    `on_apply` hears the result of every apply attempt (one of APPLY_RESULTS);
    `probe_defaults`: probe targets of the daemon's settings (its API server, DNS names)."""
    node = node_name(node)
    labels = node_labels(store, node)
    policies = [store.get(NNCP, "", n) for n in names] if names else store.list(NNCP, None)
    out: list[Object] = []
    for policy in policies:
        try:
            nnce = _enact_policy(store, node, labels, policy, netns_path, progress, on_apply,
                                 probe_defaults)
        except (MultihomeError, StoreError, ValueError, TypeError, AttributeError, KeyError) as e:
            nnce = _record_failure(store, node, policy, e, progress)
        if nnce is not None:
            out.append(nnce)
    refresh_state(store, node, netns_path)
    return out


def _enact_policy(store: Store, node: str, labels: dict[str, str], policy: Object,
                  netns_path: str | None, progress: Progress,
                  on_apply: ApplyObserver,
                  probe_defaults: probes.Defaults | None = None) -> Object | None:
    validate_policy(policy)
    if not selects(policy, labels):
        progress(f"policy {policy.name}: nodeSelector does not match node {node}")
        _forget_enactment(store, node, labels, policy, progress)
        return None
    nnce = _enact_one(store, node, policy, netns_path, progress, on_apply, probe_defaults)
    active, _, message = active_condition(nnce)
    if active in ("Aborted", "Pending"):
        progress(f"policy {policy.name}: {active.lower()}: {message}")
    _policy_status(store, policy)
    return nnce


def _record_failure(store: Store, node: str, policy: Object, error: Exception,
                    progress: Progress) -> Object | None:
    message = f"policy {policy.name} is invalid or cannot be enacted: {error}"
    progress(message)
    try:
        nnce = _set_enactment(store, node, policy, "Failing", "FailedToConfigure", message)
        _policy_status(store, policy, message)
    except (MultihomeError, StoreError, ValueError, TypeError, AttributeError, KeyError) as e:
        # the store refused the status too (e.g. an unreachable API): the next pass retries
        progress(f"policy {policy.name}: cannot record the failure: {e}")
        return None
    return nnce
