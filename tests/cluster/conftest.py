"""The cluster tier: one real single-node cluster for the whole session, started and
removed exactly as a person would, with `multihome lab up --kubernetes` / `lab down`.

The binaries come from the per-machine cache (`make test` builds them first, so the
cold build does not count against a test's timeout). A cluster that cannot start fails
every test with the component and its log named; nothing here skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.host_state import link_names, mounts_under, processes_mentioning
from support.kube import Kube

RUN_DIR = "/run/multihome-lab"


def multihome_cli() -> str:
    return str(Path(sys.executable).parent / "multihome")


def lab(state: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MULTIHOME_STATE_DIR=state)
    return subprocess.run([multihome_cli(), "lab", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


def env_from_lab(state: str) -> dict[str, str]:
    """Apply the `export` lines of `multihome lab env` to a copy of our environment."""
    out = lab(state, "env")
    assert out.returncode == 0, out.stderr
    env = dict(os.environ, MULTIHOME_STATE_DIR=state)
    for line in out.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.replace("$PATH", os.environ.get("PATH", ""))
    return env


@pytest.fixture(scope="session")
def lab_state() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.fail("the cluster tier needs root (kubelet, containerd, CNI)")
    state = tempfile.mkdtemp(prefix="mh-cluster-")
    os.chmod(state, 0o700)
    links_before = link_names()
    try:
        yield state
    finally:
        down = lab(state, "down", timeout=300)
        leftovers = {
            "processes": processes_mentioning(state) + processes_mentioning(RUN_DIR),
            "mounts": mounts_under(state) + mounts_under(RUN_DIR),
            "links": sorted(n for n in link_names() - links_before
                            if n.startswith(("mh-k8s", "dev-bridge", "bridge-dev"))),
        }
        shutil.rmtree(state, ignore_errors=True)
        assert down.returncode == 0, f"lab down failed: {down.stderr}"
        assert not any(leftovers.values()), f"lab down left {leftovers}"


@pytest.fixture(scope="session")
def cluster(lab_state: str) -> Kube:
    up = lab(lab_state, "up", "--kubernetes", "--dev-bridge-by-policy")
    assert up.returncode == 0, f"lab up --kubernetes failed:\n{up.stdout}\n{up.stderr}"
    env = env_from_lab(lab_state)
    kubectl = shutil.which("kubectl", path=env["PATH"])
    assert kubectl, f"`multihome lab env` put no kubectl on PATH: {env['PATH']}"
    return Kube(kubectl, env["KUBECONFIG"], env)
