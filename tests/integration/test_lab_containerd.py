"""The lab cluster's containerd side: ctr refusals name ctr's reason; down empties kubepods."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from multihome.lab.cluster import components, up
from multihome.lab.cluster.layout import ClusterLayout
from multihome.lab.cluster.procs import ClusterError


def test_a_ctr_refusal_names_ctrs_reason_and_containerds_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert shutil.which("ctr"), "ctr is not installed: make install adds containerd"
    monkeypatch.setattr(up, "CTR_RETRY_DELAY_S", 0.01)
    layout = ClusterLayout(root=str(tmp_path / "cluster"), run=str(tmp_path / "run"))
    with pytest.raises(ClusterError) as err:
        up._ctr(layout, "images", "list", timeout=20)
    message = str(err.value)
    assert f"failed {up.CTR_ATTEMPTS} times" in message
    assert "containerd.sock" in message  # ctr's reason: the socket it could not reach
    assert str(layout.log("containerd")) in message


def test_containerd_unpacks_into_the_snapshotter_that_needs_no_overlay_mounts(
        tmp_path: Path) -> None:
    layout = ClusterLayout(root=str(tmp_path / "cluster"), run=str(tmp_path / "run"))
    assert components.SNAPSHOTTER == "native"
    assert 'snapshotter = "native"' in components.containerd_config(layout)


def test_lab_down_kills_pod_processes_left_in_kubepods_and_removes_the_tree() -> None:
    # what a lab that failed half-way up leaves: a sandbox whose shim is gone, its
    # `sleep` ignoring SIGTERM, inside the kubelet's cgroup tree
    top = Path("/sys/fs/cgroup/pids/kubepods")
    assert not top.exists(), f"{top} exists: is a lab cluster running? stop it first"
    leaf = top / "besteffort" / "pod-test"
    leaf.mkdir(parents=True)
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; exec sleep 600"])
    try:
        (leaf / "cgroup.procs").write_text(str(proc.pid))
        up._remove_cgroups()
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert not top.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for d in (leaf, leaf.parent, top):
            with contextlib.suppress(OSError):
                d.rmdir()
