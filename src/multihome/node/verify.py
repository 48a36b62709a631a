"""Is the desired state contained in the current one? Used after apply and after rollback.

Only the keys the desired state names are compared (partial state); address lists and
bridge port lists, when given, must match exactly, as nmstate treats them. The comparing
itself lives with the typed models (state.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from multihome.node import current
from multihome.node import state as models


def route_matches(wanted: models.Route | Mapping[str, Any],
                  have: models.Route | Mapping[str, Any]) -> bool:
    """Every field `wanted` names has the same value in `have`."""
    return models.Route.from_nmstate(wanted).matches(models.Route.from_nmstate(have))


def differences(desired: models.NodeState, now: models.NodeState) -> list[str]:
    out: list[str] = []
    for want in desired.interfaces:
        out += want.differences(now.interface(want.name))
    for route in desired.routes:
        present = any(route.matches(r) for r in now.routes)
        if route.absent and present:
            out.append(f"route {route.fields()} is still there")
        elif not route.absent and not present:
            out.append(f"route {route.fields()} is missing")
    for key, values in (desired.dns or {}).items():
        have = (now.dns or {}).get(key, [])
        if list(values) != list(have):
            out.append(f"dns-resolver.config.{key} is {have}, wanted {list(values)}")
    for rule in desired.rules or ():
        present = any(rule.matches(r) for r in now.rules or ())
        if rule.absent and present:
            out.append(f"route rule {rule.fields()} is still there")
        elif not rule.absent and not present:
            out.append(f"route rule {rule.fields()} is missing")
    return out


def contained(desired: models.NodeState | Mapping[str, Any], netns_path: str | None, *,
              tries: int = 5, pause: float = 0.5) -> list[str]:
    """Re-read until the desired state shows (nmstate retries too); the last differences."""
    wanted = models.from_nmstate(desired)
    diffs: list[str] = []
    for attempt in range(tries):
        diffs = differences(wanted, current.read(netns_path))
        if not diffs:
            return []
        if attempt + 1 < tries:
            time.sleep(pause)
    return diffs
