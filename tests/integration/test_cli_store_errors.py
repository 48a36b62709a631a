"""A store the CLI cannot use: one line naming the file and what to do, for every command.

Corrupt (random bytes), a directory, read-only (a read-only bind mount: as root, file
modes alone do not stop a write): no traceback, a non-zero exit. And what the CLI and the
lab create is private: the store 0600 in a 0700 directory, lab state likewise.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from multihome.lab import settings as labsettings
from multihome.plugins import state_file
from support.cli_objects import MULTIHOME, SEED

COMMANDS = [("get", "nad"), ("get", "nad", "-A"), ("apply", "-f", str(SEED)),
            ("create", "-f", str(SEED)), ("delete", "nad", "x"), ("describe", "nad", "x"),
            ("pod", "get"), ("pod", "describe", "p"), ("pod", "delete", "p")]


def run(store: Path, *args: str, wrap: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MULTIHOME_STORE"}
    env["MULTIHOME_STATE_DIR"] = str(store.parent / "lab-state")
    return subprocess.run([*(wrap or []), MULTIHOME, "--store", str(store), *args],
                          capture_output=True, text=True, timeout=60, env=env)


def assert_one_line_about(proc: subprocess.CompletedProcess[str], store: Path,
                          hint: str) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(store) in lines[0] and hint in lines[0], lines[0]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_corrupt_store(tmp_path: Path, args: tuple[str, ...]) -> None:
    store = tmp_path / "s.db"
    store.write_bytes(os.urandom(8192))
    assert_one_line_about(run(store, *args), store, "not a multihome store")


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_directory_as_the_store(tmp_path: Path, args: tuple[str, ...]) -> None:
    store = tmp_path / "s.db"
    store.mkdir()
    assert_one_line_about(run(store, *args), store, "is a directory")


@pytest.mark.parametrize("args", [("apply", "-f", str(SEED)), ("get", "nad")], ids=" ".join)
def test_a_read_only_store(tmp_path: Path, args: tuple[str, ...]) -> None:
    where = tmp_path / "ro"
    where.mkdir()
    store = where / "s.db"
    assert run(store, "get", "nad").returncode == 0  # made, empty
    # a private mount namespace: the read-only bind mount vanishes with the process
    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
            f'mount --bind -o ro "{where}" "{where}" && exec "$0" "$@"']
    assert_one_line_about(run(store, *args, wrap=wrap), store, "read-only")


def test_the_store_and_its_new_directory_are_private(tmp_path: Path) -> None:
    store = tmp_path / "new" / "deeper" / "s.db"
    assert run(store, "apply", "-f", str(SEED)).returncode == 0
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    for d in (store.parent, store.parent.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for extra in store.parent.iterdir():  # -wal, -shm
        assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra


def test_lab_settings_and_plugin_state_are_private(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    labsettings.save(labsettings.LabSettings(state_dir=str(lab)))
    assert stat.S_IMODE(lab.stat().st_mode) == 0o700
    assert {stat.S_IMODE(f.stat().st_mode) for f in lab.iterdir()} == {0o600}
    data = tmp_path / "sriov"
    state_file.save(str(data), "cid", "net1", {"pci": "0000:00:01.0"})
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE(state_file.path(str(data), "cid", "net1").stat().st_mode) == 0o600
