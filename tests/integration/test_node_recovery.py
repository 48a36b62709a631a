"""A `node apply` killed after its checkpoint: the next node command (or the daemon, through
recovery.recover_interrupted) rolls the node back and says so; a checkpoint whose apply or
timer still runs is left alone, and only the timer itself is ever signalled."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from multihome.node import apply, checkpoint, process, recovery
from support import kstate
from support.node_world import NodeWorld, make_world

pytestmark = pytest.mark.netns

# the child changes the node through the real engine, then hangs where it would verify:
# killed there, it leaves a checkpoint and a changed node, as a `kill -9` of an apply does
_HANGING_APPLY = """
import json, sys, time
from multihome.node import transaction, verify
verify.contained = lambda *a, **k: time.sleep(3600)
transaction.apply_state(json.loads(sys.argv[1]), netns_path=sys.argv[2])
"""


@pytest.fixture
def world(netns_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[NodeWorld]:
    monkeypatch.setenv("MULTIHOME_NODE_DIR", str(tmp_path / "node"))
    w = make_world(netns_factory, tmp_path, random.randint(100, 199))
    try:
        yield w
    finally:
        cp = checkpoint.load()
        if cp is not None:  # whatever a failed test left: no timer outlives it
            checkpoint.drop(cp)


def _links(w: NodeWorld) -> dict[str, Any]:
    return {n: (lk.get("master"), "UP" in lk.get("flags", []))
            for n, lk in kstate.links(w.node.name).items()}


def _killed_apply(w: NodeWorld, state: dict[str, Any]) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _HANGING_APPLY, json.dumps(state),
                             w.node.path], env=w.env())
    try:
        deadline = time.monotonic() + 60
        # killed once the change is done (the port on the bridge), where it hangs
        while (kstate.link(w.node.name, "up0") or {}).get("master") != "br0" \
                or checkpoint.load() is None:
            assert proc.poll() is None, "the apply ended on its own"
            assert time.monotonic() < deadline, "the apply never changed the node"
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()


def test_the_next_node_command_rolls_back_a_killed_apply(world: NodeWorld) -> None:
    before = _links(world)
    _killed_apply(world, world.bridge_policy("br0", ["up0"], probes=False))
    assert kstate.link(world.node.name, "up0")["master"] == "br0"
    shown = world.node_cmd("show")
    assert shown.returncode == 0, shown.stderr
    assert "recovered:" in shown.stderr and "was interrupted" in shown.stderr
    assert _links(world) == before
    assert not Path(checkpoint.path()).exists()


def test_after_a_killed_apply_the_next_apply_runs_and_blames_no_no_commit(
        world: NodeWorld) -> None:
    _killed_apply(world, world.bridge_policy("br0", ["up0"], probes=False))
    proc = world.node_cmd("apply", "-f", world.write("p.yml", world.bridge_policy(
        "br1", ["up0"], probes=False)))
    assert proc.returncode == 0, proc.stderr
    assert "--no-commit" not in proc.stderr and "was interrupted" in proc.stderr
    assert kstate.link(world.node.name, "br0") is None
    assert kstate.link(world.node.name, "up0")["master"] == "br1"


def test_an_apply_in_progress_is_neither_rolled_back_nor_blamed_on_no_commit(
        world: NodeWorld) -> None:
    cp = checkpoint.capture(world.bridge_policy("br0", ["up0"]), world.node.path, 60)
    checkpoint.save(cp)  # owned by this (running) process
    proc = world.node_cmd("apply", "-f", world.write("p.yml", {"interfaces": []}))
    assert proc.returncode == 1
    assert f"another `node apply` (pid {os.getpid()}) is changing the node" in proc.stderr
    assert "--no-commit" not in proc.stderr
    assert checkpoint.load() == cp
    assert world.node_cmd("commit").returncode == 1
    assert checkpoint.load() == cp


def test_the_daemon_recovery_rolls_back_an_expired_checkpoint_without_timer(
        world: NodeWorld) -> None:
    before = _links(world)
    state = world.bridge_policy("br0", ["up0"], probes=False)
    cp = checkpoint.capture(state, world.node.path, 1)
    cp.phase, cp.created = checkpoint.AWAITING_COMMIT, time.time() - 10
    checkpoint.save(cp)
    apply.change(state, world.node.path)
    done = recovery.recover_interrupted()
    assert done is not None and "expired" in done and "rolled back" in done
    assert _links(world) == before
    assert recovery.recover_interrupted() is None


def test_a_lost_timer_is_started_again(world: NodeWorld) -> None:
    cp = checkpoint.capture(world.bridge_policy("br0", ["up0"]), world.node.path, 600)
    cp.phase = checkpoint.AWAITING_COMMIT
    checkpoint.save(cp)
    done = recovery.recover_interrupted()
    assert done is not None and "new one" in done
    again = checkpoint.load()
    assert again is not None and recovery.timer_alive(again)


def test_commit_signals_only_the_timer_not_a_process_that_reused_its_pid(
        world: NodeWorld) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        started = process.start_time(bystander.pid)
        assert started is not None
        cp = checkpoint.capture(world.bridge_policy("br0", ["up0"]), world.node.path, 600)
        cp.phase, cp.timer_pid, cp.timer_start = (checkpoint.AWAITING_COMMIT, bystander.pid,
                                                  started + 1)  # the pid, not the process
        checkpoint.save(cp)
        proc = world.node_cmd("commit")
        assert proc.returncode == 0, proc.stderr
        assert bystander.poll() is None, "commit signalled a process that is not its timer"
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait()


def test_a_checkpoint_of_an_older_version_without_phase_is_recovered(
        world: NodeWorld) -> None:
    """Files written before phases: no timer means an apply that never finished."""
    before = _links(world)
    state = world.bridge_policy("br0", ["up0"], probes=False)
    cp = checkpoint.capture(state, world.node.path, 60)
    old = {k: v for k, v in asdict(cp).items()
           if k not in ("phase", "owner_pid", "owner_start", "timer_start")}
    os.makedirs(checkpoint.node_dir(), exist_ok=True)
    Path(checkpoint.path()).write_text(json.dumps(old))
    apply.change(state, world.node.path)
    assert "was interrupted" in (recovery.recover_interrupted() or "")
    assert _links(world) == before


def test_the_checkpoint_file_is_not_world_readable(world: NodeWorld) -> None:
    cp = checkpoint.capture(world.bridge_policy("br0", ["up0"]), world.node.path, 60)
    checkpoint.save(cp)
    assert os.stat(checkpoint.path()).st_mode & 0o077 == 0
