"""How many nodes may be unavailable while a policy rolls out, and how often to retry.

As in kubernetes-nmstate: `spec.maxUnavailable` (an integer or "N%", default "50%") is
scaled to the number of enactments of the policy (the nodes it matches), rounded up,
at least 1. A node takes one of those slots before it changes anything (the count lives
in the policy's `status.unavailableNodeCountMap`, per generation, updated with an
optimistic version check so concurrent `node enact` runs cannot both take the last one);
success gives the slot back, a failed node keeps it (it *is* unavailable). A node that
finds no free slot is Pending, and Aborted once the failed nodes alone fill maxUnavailable.

The local lab has one node, so its one enactment always gets the one slot; several
`node enact --node NAME` runs against one store (one namespace playing each node) make
the multi-node rollout that the tests exercise.

Retries are multihome's knob: the annotation `multihome.io/max-retries: "N"` on the
policy retries a failed apply N more times (backoff 1 s doubling, at most 30 s), the
kubernetes-nmstate handler's NNCP_MAX_RETRIES per policy. Default 0: every attempt in
the lab blocks the command and rolls the node back, so retrying is asked for.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from typing import Any

from multihome.store import Conflict, Object, Store
from multihome.store.objects import NNCE, NNCP

DEFAULT_MAX_UNAVAILABLE = "50%"
MAX_RETRIES_ANNOTATION = "multihome.io/max-retries"
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
MAX_CONFLICTS = 20  # optimistic updates of one object before a pass gives up
CONFLICT_WAIT_S = 0.02


class MaxUnavailableReached(Exception):
    """No unavailable-node slot is free for this policy generation."""


def validate_max_unavailable(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("spec.maxUnavailable must be an integer or a percentage like \"50%\"")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("spec.maxUnavailable must not be negative")
        return
    text = value[:-1] if value.endswith("%") else ""
    if not text.isdigit() or int(text) > 100:
        raise ValueError(f"spec.maxUnavailable {value!r} is not a percentage like \"50%\"")


def scaled(value: Any, nodes: int) -> int:
    """maxUnavailable as a node count for `nodes` matching nodes (rounded up, min 1)."""
    if value is None:
        value = DEFAULT_MAX_UNAVAILABLE
    count = math.ceil(int(value[:-1]) * nodes / 100) if isinstance(value, str) else int(value)
    return max(1, count)


def enactments_of(store: Store, policy: str) -> list[Object]:
    return [e for e in store.list(NNCE, None) if e.labels.get("nmstate.io/policy") == policy]


def max_unavailable(store: Store, policy: Object) -> int:
    return scaled(policy.spec.get("maxUnavailable"), max(1, len(enactments_of(store,
                                                                               policy.name))))


def _condition(obj: Object, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in obj.status.get("conditions") or [])


def failed_nodes(store: Store, policy: Object) -> int:
    """Enactments of this generation that failed (Failing, no longer Progressing)."""
    gen = int(policy.metadata.get("generation", 1))
    return sum(1 for e in enactments_of(store, policy.name)
               if e.status.get("policyGeneration") == gen and _condition(e, "Failing")
               and not _condition(e, "Progressing"))


def retry_on_conflict(attempt: int, error: Conflict) -> None:
    """Called after the `attempt`-th Conflict of an optimistic update: waits a short random
    time (racing nodes fall apart) or, after MAX_CONFLICTS, gives up with that Conflict
    (the next pass of the caller tries again)."""
    if attempt >= MAX_CONFLICTS:
        raise error
    time.sleep(random.uniform(0, CONFLICT_WAIT_S * attempt))


def _change_count(store: Store, name: str, delta: int, limit: int | None) -> None:
    for attempt in itertools.count(1):
        policy = store.get(NNCP, "", name)
        key = str(policy.metadata.get("generation", 1))
        counts = dict(policy.status.get("unavailableNodeCountMap") or {})
        have = int(counts.get(key, 0))
        if limit is not None and have >= limit:
            raise MaxUnavailableReached(
                f"{have} of at most {limit} nodes are already unavailable for policy {name}")
        counts[key] = max(0, have + delta)
        policy.body.setdefault("status", {})["unavailableNodeCountMap"] = counts
        try:
            store.update(policy, expected_version=policy.resource_version)
            return
        except Conflict as e:  # another node changed the policy status: read it again
            retry_on_conflict(attempt, e)


def claim_slot(store: Store, policy: Object) -> None:
    _change_count(store, policy.name, +1, max_unavailable(store, policy))


def release_slot(store: Store, policy: Object) -> None:
    _change_count(store, policy.name, -1, None)


def max_retries(policy: Object) -> int:
    raw = policy.annotations.get(MAX_RETRIES_ANNOTATION)
    if raw is None:
        return 0
    if not raw.isdigit():
        raise ValueError(f"annotation {MAX_RETRIES_ANNOTATION} must be a whole number, "
                         f"not {raw!r}")
    return int(raw)


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1-based)."""
    return float(min(BACKOFF_MAX, BACKOFF_START * 2 ** (attempt - 1)))
