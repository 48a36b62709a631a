"""`kubectl multihome`: the installed `kubectl-multihome` entry point defaults to the
cluster of the current kubeconfig (a fixture API server stands in for the cluster in
tests/k8s; here only the wiring)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "kubectl-multihome"


@pytest.fixture
def exe() -> Path:
    if not BIN.exists():
        pytest.skip(f"{BIN} is not installed (make install writes it)")
    return BIN


def test_help_names_the_kubectl_form(exe: Path) -> None:
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("Usage: kubectl multihome")
    assert "get" in out.stdout and "describe" in out.stdout


def test_defaults_to_the_kubeconfig_cluster(exe: Path, tmp_path: Path) -> None:
    """No store named: the store is the API of $KUBECONFIG, so a missing file is the error."""
    env = {k: v for k, v in os.environ.items() if k != "MULTIHOME_STORE"}
    env["KUBECONFIG"] = str(tmp_path / "missing-kubeconfig")
    out = subprocess.run([str(exe), "get", "nad"], capture_output=True, text=True, env=env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"Error: cannot open the store k8s:{env['KUBECONFIG']}: Configuration file "
        f"{env['KUBECONFIG']} not found"]


def test_a_named_store_wins(exe: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MULTIHOME_STORE": str(tmp_path / "store.db"),
           "KUBECONFIG": str(tmp_path / "missing-kubeconfig")}
    out = subprocess.run([str(exe), "get", "nad"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "missing-kubeconfig" not in out.stdout + out.stderr
