"""Removing a container's policy tables from the node when the container goes.

Kept apart from `enforce` (which reads the engine's records) so that the engine's DEL can
call it without an import cycle: every DEL, in the daemon, the lab or in-process, takes
the node-side tables of its container with it, so none outlives its pod.
"""

from __future__ import annotations

from multihome.attach.policy import rules
from multihome.net import nft


def tables(prefix: str) -> list[str]:
    """Our tables on the node (the current network namespace) whose names start so."""
    return [t for t in nft.table_names(rules.FAMILY) if t.startswith(prefix)]


def forget(container_id: str) -> list[str]:
    """Remove a container's node tables; return their names."""
    stale = tables(rules.container_prefix(container_id))
    if stale:
        nft.run([c for t in stale for c in rules.remove(t)],
                what="remove the policy rules of a deleted pod")
    return stale
