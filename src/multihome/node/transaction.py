"""`node apply` as one transaction: validate → checkpoint → change → verify → probes →
commit or roll back.

Probes (probes.py): pings (the policy's targets, the command line's, else the default
gateways), DNS names through the node's resolver, the API server in Kubernetes mode. As
in kubernetes-nmstate a probe counts only if it passed before the change, so a node
without a reachable gateway does not roll back every policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from multihome.errors import MultihomeError
from multihome.node import apply, checkpoint, recovery, schema, verify
from multihome.node import probes as node_probes
from multihome.node.errors import NodeError

DEFAULT_TIMEOUT = 60


@dataclass
class ApplyReport:
    changes: list[str] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)  # targets that were checked
    committed: bool = False
    checkpoint_id: str = ""
    rolled_back: list[str] = field(default_factory=list)


class ApplyFailed(NodeError):
    """The policy could not be applied; the earlier state was restored (see `report`)."""

    def __init__(self, msg: str, details: str = "", report: ApplyReport | None = None) -> None:
        super().__init__(msg, details)
        self.report = report or ApplyReport()


class CheckpointPending(NodeError):
    """An earlier `--no-commit` apply waits for commit or rollback."""



def _roll_back(cp: checkpoint.Checkpoint, report: ApplyReport, why: str,
               details: str) -> ApplyFailed:
    try:
        report.rolled_back = checkpoint.restore(cp)
    except MultihomeError as e:
        return ApplyFailed(f"{why}, and the rollback failed too (checkpoint kept; run "
                           "`multihome node rollback` again)", f"{details}; rollback: {e}",
                           report)
    checkpoint.drop(cp)
    return ApplyFailed(f"{why}; the earlier state was restored", details, report)


def rollback_leftover() -> list[str]:
    """Roll back a checkpoint an earlier apply left (what a node handler does first); one
    that a running apply owns is not a leftover (CheckpointPending)."""
    cp = checkpoint.load()
    if cp is None:
        return []
    if cp.phase == checkpoint.APPLYING and recovery.owner_alive(cp):
        raise CheckpointPending(recovery.describe_pending(cp))
    done = checkpoint.restore(cp)
    checkpoint.drop(cp)
    return done


def apply_state(desired_raw: Any, *, netns_path: str | None = None,
                timeout: int = DEFAULT_TIMEOUT, commit: bool = True,
                probes: Sequence[str] = (), leftover: str = "refuse",
                probe_defaults: node_probes.Defaults | None = None) -> ApplyReport:
    """Apply and verify `desired_raw`; raises ApplyFailed after restoring the earlier state."""
    desired = schema.parse(desired_raw)  # checked and typed before anything changes
    recovery.recover_interrupted()  # a killed apply's checkpoint is rolled back first
    pending = checkpoint.load()
    if pending is not None:
        if leftover != "rollback":
            raise CheckpointPending(recovery.describe_pending(pending))
        rollback_leftover()
    wait = desired.probes.timeout or node_probes.DEFAULT_TIMEOUT_S
    targets = node_probes.targets(desired, probes, netns_path, probe_defaults)
    unusable = node_probes.failed(targets, netns_path, wait)
    usable = [t for t in targets if t not in unusable]
    report = ApplyReport(probes=[str(t) for t in usable])
    cp = checkpoint.capture(desired, netns_path, timeout)
    report.checkpoint_id = cp.id
    checkpoint.save(cp)
    try:
        report.changes = apply.change(desired, netns_path)
    except MultihomeError as e:
        raise _roll_back(cp, report, "applying the policy failed", str(e)) from e
    diffs = verify.contained(desired, netns_path)
    if diffs:
        raise _roll_back(cp, report, "the node did not reach the desired state",
                         "; ".join(diffs))
    failed = node_probes.failed(usable, netns_path, wait)
    if failed:
        raise _roll_back(cp, report, "probe failed after the change",
                         f"{', '.join(map(str, failed))} stopped answering")
    if commit:
        checkpoint.drop(cp)
        report.committed = True
        return report
    cp.changes = report.changes
    cp.timer_pid, cp.timer_start = checkpoint.start_timer(cp)
    cp.phase = checkpoint.AWAITING_COMMIT
    checkpoint.save(cp)
    return report


def _settled(what: str) -> checkpoint.Checkpoint:
    cp = checkpoint.load()
    if cp is None:
        raise NodeError(f"no checkpoint to {what}")
    if cp.phase == checkpoint.APPLYING and recovery.owner_alive(cp):
        raise CheckpointPending(f"cannot {what}: {recovery.describe_pending(cp)}")
    return cp


def commit() -> str:
    cp = _settled("commit")
    checkpoint.drop(cp)
    return cp.id


def rollback() -> tuple[str, list[str]]:
    cp = _settled("roll back")
    done = checkpoint.restore(cp)
    checkpoint.drop(cp)
    return cp.id, done
