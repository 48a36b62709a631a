"""Finishing what a killed `node apply` left: run at the start of every node command and
of the daemon (:func:`recover_interrupted`).

A checkpoint file outlives its process. In phase APPLYING it belongs to the apply that
wrote it; if that process is gone (killed, crashed, the node rebooted), the node may be
half changed and nobody will roll it back, so the next command does. In phase
AWAITING_COMMIT a `--no-commit` apply finished and its timer rolls back at the expiry; if
the timer is gone, an expired checkpoint is rolled back now and an unexpired one gets a
new timer. A checkpoint whose owner or timer still runs is left alone.
"""

from __future__ import annotations

import time

from multihome.errors import MultihomeError
from multihome.node import checkpoint, process
from multihome.node.errors import NodeError


class RecoveryFailed(NodeError):
    """An interrupted apply could not be rolled back; the message says what state the node
    is in and what to run."""


def owner_alive(cp: checkpoint.Checkpoint) -> bool:
    return process.alive(cp.owner_pid, cp.owner_start)


def timer_alive(cp: checkpoint.Checkpoint) -> bool:
    return process.alive(cp.timer_pid, cp.timer_start)


def describe_pending(cp: checkpoint.Checkpoint) -> str:
    """Why a new apply has to wait for `cp`, in the words of what is really happening."""
    if cp.phase == checkpoint.APPLYING:
        return (f"another `node apply` (pid {cp.owner_pid}) is changing the node right now "
                f"(checkpoint {cp.id}); wait for it to finish")
    left = max(0, int(cp.expires - time.time()))
    return (f"checkpoint {cp.id} from an earlier `node apply --no-commit` is pending "
            f"({left}s left): run `multihome node commit` or `multihome node rollback` "
            "first")


def _roll_back(cp: checkpoint.Checkpoint, why: str) -> list[str]:
    try:
        done = checkpoint.restore(cp)
    except MultihomeError as e:
        raise RecoveryFailed(
            f"{why}; rolling it back failed, so the node is partly changed: interfaces "
            f"{', '.join(cp.touched) or '(none)'} may differ from before checkpoint {cp.id} "
            f"(kept in {checkpoint.path()}); fix the cause and run `multihome node rollback`",
            str(e)) from e
    checkpoint.drop(cp)
    return done


def recover_interrupted() -> str | None:
    """Roll back (or re-arm) a checkpoint nobody is looking after any more; a one-line
    account of what was done, None when there was nothing to do.

    Raises RecoveryFailed when the rollback fails (the checkpoint is kept) and CNIError
    when the checkpoint file cannot be read."""
    cp = checkpoint.load()
    if cp is None:
        return None
    if cp.phase == checkpoint.APPLYING:
        if owner_alive(cp):
            return None
        why = (f"`node apply` (pid {cp.owner_pid}) was interrupted after checkpoint {cp.id} "
               "and before it committed or rolled back")
        done = _roll_back(cp, why)
        return f"{why}: rolled back ({len(done)} changes)"
    if timer_alive(cp):
        return None
    if time.time() >= cp.expires:
        why = f"checkpoint {cp.id} expired without commit and its rollback timer is gone"
        done = _roll_back(cp, why)
        return f"{why}: rolled back ({len(done)} changes)"
    cp.timer_pid, cp.timer_start = checkpoint.start_timer(cp)
    checkpoint.save(cp)
    return (f"checkpoint {cp.id} lost its rollback timer; a new one rolls it back in "
            f"{int(cp.expires - time.time())}s unless committed")
