"""The node daemon and the shim, end to end, with real namespaces.

The daemon runs inside a namespace that plays the node (`ip netns exec`), so its bridges
and nft tables never touch the real host; the installed `multihome` shim is exec'ed in
the same namespace, exactly as a runtime would exec it. Every daemon is started in its
own session and its process group is killed at teardown.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from multihome.daemon.autoconf import CONFIG_NAME
from support.cni_exec import CNIOutcome, run_cni
from support.daemon_world import MULTIHOME, NOTHING, Node
from support.netns import Netns, unique

pytestmark = pytest.mark.netns


def test_add_del_through_shim_and_daemon(node: Node, netns: Netns) -> None:
    node.write_default()
    node.start()
    cid = unique("c")
    result = node.cni("ADD", cid, netns).ok()
    assert result["interfaces"][-1]["name"] == "eth0"
    assert result["ips"][0]["address"] == "10.62.0.2/24"
    assert netns.run("ip", "-o", "-4", "addr", "show", "eth0").stdout.split()[3] == "10.62.0.2/24"
    assert node.ns.run("ping", "-c1", "-W2", "10.62.0.2").returncode == 0
    node.cni("CHECK", cid, netns).ok()
    node.cni("DEL", cid, netns).ok()
    node.cni("DEL", cid, netns).ok()  # idempotent
    assert node.leftovers(netns) == NOTHING

    metrics = (node.get("/metrics") or b"").decode()
    assert 'multihome_cni_requests_total{command="ADD",type="multihome",result="ok"} 1' in metrics
    assert 'multihome_plugin_duration_seconds_count{plugin="bridge",command="ADD"} 1' in metrics
    assert "multihome_cni_requests_in_flight 0" in metrics
    assert f"pod=default/{cid} container={cid} ifname=eth0 msg=\"ADD ok\"" in node.log()
    assert node.get("/readyz") == b"ready\n"


def test_plugin_executable_takes_the_daemon_path(node: Node, netns: Netns) -> None:
    node.write_default()
    node.start()
    conf = {"cniVersion": "1.0.0", "name": "direct", "type": "bridge", "bridge": node.bridge,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.63.0.0/24"}]],
                     "dataDir": str(node.ipam)}}
    env = {"MULTIHOME_SOCKET": node.socket}
    cid = unique("c")
    assert node.cni("ADD", cid, netns, exe="bridge", conf=conf, env=env).ok()["ips"]
    node.cni("DEL", cid, netns, exe="bridge", conf=conf, env=env).ok()
    metrics = (node.get("/metrics") or b"").decode()
    assert 'multihome_cni_requests_total{command="ADD",type="bridge",result="ok"} 1' in metrics
    assert node.leftovers(netns) == NOTHING


def test_caller_in_another_netns_runs_in_process(node: Node, netns: Netns,
                                                 netns_factory: Any) -> None:
    """A daemon must never build a caller's bridge in its own namespace."""
    node.write_default()
    node.start()
    other: Netns = netns_factory("mho")
    conf = {"cniVersion": "1.0.0", "name": "elsewhere", "type": "bridge",
            "bridge": node.bridge, "ipam": {"type": "host-local", "dataDir": str(node.ipam),
                                            "ranges": [[{"subnet": "10.64.0.0/24"}]]}}
    out = run_cni(node.installed / "bridge", "ADD", conf, container_id="x1", netns=netns.path,
                  cni_path=node.installed, host_ns=other,
                  env={"MULTIHOME_SOCKET": node.socket})
    out.ok()
    assert other.run("ip", "link", "show", node.bridge, check=False).returncode == 0
    assert 'type="bridge"' not in (node.get("/metrics") or b"").decode()
    run_cni(node.installed / "bridge", "DEL", conf, container_id="x1", netns=netns.path,
            cni_path=node.installed, host_ns=other, env={"MULTIHOME_SOCKET": node.socket}).ok()


def test_socket_is_root_only(node: Node) -> None:
    node.write_default()
    node.start()
    st = os.stat(node.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == 0
    assert stat.S_IMODE(os.stat(os.path.dirname(node.socket)).st_mode) == 0o700


def test_no_daemon_add_is_try_again_and_del_runs_in_process(node: Node, netns: Netns) -> None:
    node.write_default(hold=True)
    node.start()
    conf = node.plugin_conf()
    node.stop_all()
    os.unlink(node.socket)  # a SIGKILLed daemon leaves its socket; nothing listens there
    cid = unique("c")
    out = node.cni("ADD", cid, netns, conf=conf)
    assert out.returncode == 1
    assert out.json["code"] == 11
    assert "multihome daemon is not running" in out.json["msg"]
    node.cni("DEL", cid, netns, conf=conf).ok()
    assert node.leftovers(netns) == NOTHING


def kill_mid_add(node: Node, netns: Netns) -> str:
    """SIGKILL the daemon while an ADD holds in its last plugin; the caller gets code 11."""
    node.write_default(hold=True)
    node.hold()
    proc = node.start()
    cid = unique("c")
    add = node.cni_background("ADD", cid, netns)
    node.wait_holding(cid)  # the bridge is attached and the IP allocated; mh-hold runs
    assert node.leftovers(netns)["ips"] == ["10.62.0.2"]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    out, _ = add.communicate(timeout=30)
    assert add.returncode == 1 and json.loads(out)["code"] == 11
    node.release()
    return cid


def test_daemon_killed_mid_add_then_del_leaves_nothing(node: Node, netns: Netns) -> None:
    cid = kill_mid_add(node, netns)
    node.cni("DEL", cid, netns).ok()  # no daemon: the shim runs DEL from the cache
    assert node.leftovers(netns) == NOTHING


def test_daemon_killed_mid_add_then_gc_leaves_nothing(node: Node, netns: Netns) -> None:
    kill_mid_add(node, netns)
    node.start()  # a new daemon; the runtime's GC with no valid attachments
    conf = {**node.plugin_conf(), "cniVersion": "1.1.0", "cni.dev/valid-attachments": []}
    out = run_cni(node.installed / "multihome", "GC", conf, cni_path=f"{node.extra_bin}:"
                  f"{node.installed}", host_ns=node.ns, ifname="")
    out.ok()
    assert node.leftovers(netns) == NOTHING


def test_queue_limit_answers_try_again(node: Node, netns_factory: Any) -> None:
    node.write_default(hold=True)
    node.hold()
    node.start("--workers", "1", "--queue", "0")
    pods: list[Netns] = [netns_factory("mhq"), netns_factory("mhq")]
    first = node.cni_background("ADD", "q1", pods[0])
    node.wait_holding("q1")
    busy = node.cni("ADD", "q2", pods[1])
    assert busy.returncode == 1
    assert busy.json["code"] == 11
    assert "busy" in busy.json["msg"]
    metrics = (node.get("/metrics") or b"").decode()
    assert 'multihome_cni_requests_total{command="ADD",type="multihome",result="busy"} 1' \
        in metrics
    assert "multihome_cni_requests_in_flight 1" in metrics
    node.release()
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 0, out
    for cid, pod in (("q1", pods[0]), ("q2", pods[1])):
        node.cni("DEL", cid, pod).ok()
        assert node.leftovers(pod) == NOTHING


def test_same_container_serialized(node: Node, netns: Netns) -> None:
    """A DEL that arrives while its container's ADD runs waits for it (then cleans up)."""
    node.write_default(hold=True)
    node.hold()
    node.start()
    add = node.cni_background("ADD", "s1", netns)
    node.wait_holding("s1")
    delete = node.cni_background("DEL", "s1", netns)
    time.sleep(0.5)
    assert delete.poll() is None  # queued behind the ADD
    node.release()
    assert add.wait(timeout=60) == 0
    assert delete.wait(timeout=60) == 0
    assert node.leftovers(netns) == NOTHING


def test_daemon_runs_without_per_thread_malloc_caches(node: Node, netns: Netns) -> None:
    """glibc's per-thread caches of freed chunks grew the daemon's RSS burst after burst
    (malloc_trim cannot return them): the daemon re-executes itself with them off, under
    the pid it was started as, and serves as before."""
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("a glibc setting")
    node.write_default()
    proc = node.start()
    environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
    tunables = [e for e in environ if e.startswith(b"GLIBC_TUNABLES=")]
    assert tunables and b"glibc.malloc.tcache_count=0" in tunables[0].split(b"=", 1)[1].split(b":")
    node.cni("ADD", "m1", netns).ok()
    node.cni("DEL", "m1", netns).ok()
    assert node.leftovers(netns) == NOTHING


def test_sigterm_finishes_in_flight_and_keeps_config(node: Node, netns: Netns) -> None:
    node.write_default(hold=True)
    node.hold()
    proc = node.start()
    add = node.cni_background("ADD", "t1", netns)
    node.wait_holding("t1")
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while os.path.exists(node.socket):  # stops accepting at once
        assert time.monotonic() < deadline, "socket still there after SIGTERM"
        time.sleep(0.05)
    assert proc.poll() is None  # still finishing the ADD
    node.release()
    out, _ = add.communicate(timeout=60)
    assert add.returncode == 0, out
    assert json.loads(out)["ips"][0]["address"] == "10.62.0.2/24"
    assert proc.wait(timeout=30) == 0
    assert (node.conf_dir / CONFIG_NAME).exists()
    node.cni("DEL", "t1", netns).ok()  # no daemon now: in-process
    assert node.leftovers(netns) == NOTHING


def test_config_follows_default_kept_on_restart_removed_on_uninstall(
        node: Node, tmp_path: Path) -> None:
    assert node.get("/readyz") is None
    default = node.write_default()
    proc = node.start()
    ours = node.conf_dir / CONFIG_NAME
    conf = json.loads(ours.read_text())
    assert conf["plugins"][0]["clusterNetwork"] == str(default)
    assert conf["plugins"][0]["socketPath"] == node.socket

    (node.conf_dir / "05-first.conf").write_text(json.dumps(
        {"cniVersion": "0.4.0", "name": "first", "type": "bridge", "bridge": "x"}))
    deadline = time.monotonic() + 10
    while json.loads(ours.read_text())["plugins"][0]["clusterNetwork"] != str(
            node.conf_dir / "05-first.conf"):
        assert time.monotonic() < deadline, "config not rewritten after the default changed"
        time.sleep(0.1)
    assert json.loads(ours.read_text())["cniVersion"] == "0.4.0"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert ours.exists()
    node.start()
    assert ours.exists()
    node.stop_all()

    bin_dir = tmp_path / "uninstall-bin"
    subprocess.run([MULTIHOME, "install-cni", "--bin-dir", str(bin_dir),
                    "--types", "multihome,bridge"], check=True, capture_output=True)
    (bin_dir / "other-vendor").write_text("#!/bin/sh\n")
    subprocess.run([MULTIHOME, "uninstall", "--conf-dir", str(node.conf_dir), "--bin-dir",
                    str(bin_dir)], check=True, capture_output=True)
    assert not ours.exists()
    assert sorted(p.name for p in node.conf_dir.iterdir()) == ["05-first.conf",
                                                               "10-cluster.conflist"]
    assert sorted(p.name for p in bin_dir.iterdir()) == ["other-vendor"]


HOST_PYTHON = "/usr/bin/python3"


def test_standalone_executables_need_only_the_daemon(node: Node, netns: Netns,
                                                     tmp_path: Path) -> None:
    """`install-cni --standalone`, the DaemonSet's copy for the host: the shim runs on the
    host's own interpreter, which has no multihome package, and has only the daemon."""
    if subprocess.run([HOST_PYTHON, "-IS", "-c", "import sys; assert sys.version_info >= "
                       "(3, 11); import multihome"], capture_output=True).returncode == 0:
        pytest.skip(f"{HOST_PYTHON} can import multihome: it cannot show standalone-ness")
    if subprocess.run([HOST_PYTHON, "-IS", "-c", "import sys; assert sys.version_info >= "
                       "(3, 11)"], capture_output=True).returncode != 0:
        pytest.skip(f"no Python >= 3.11 at {HOST_PYTHON}")
    bin_dir = tmp_path / "host-bin"
    subprocess.run([MULTIHOME, "install-cni", "--bin-dir", str(bin_dir), "--standalone",
                    "--python", HOST_PYTHON], check=True, capture_output=True)
    text = (bin_dir / "multihome").read_text()
    assert text.startswith(f"#!{HOST_PYTHON} -IS\n") and "sys.path" not in text

    def cni(command: str, cid: str, conf: dict[str, Any]) -> CNIOutcome:
        return run_cni(bin_dir / "multihome", command, conf, container_id=cid,
                       netns=netns.path, cni_path=node.installed, host_ns=node.ns,
                       cni_args=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={cid}")

    version = run_cni(bin_dir / "bridge", "VERSION", None)
    assert version.returncode == 0 and "1.1.0" in version.json["supportedVersions"]
    node.write_default()
    node.start()
    conf = node.plugin_conf()
    cid = unique("c")
    assert cni("ADD", cid, conf).ok()["ips"][0]["address"] == "10.62.0.2/24"
    cni("DEL", cid, conf).ok()
    assert node.leftovers(netns) == NOTHING

    node.stop_all()
    os.unlink(node.socket)
    for command in ("ADD", "DEL"):
        out = cni(command, unique("c"), conf)
        assert out.returncode == 1 and out.json["code"] == 11
        assert out.json["msg"].startswith("multihome daemon is not running (no answer on ")
        assert "--standalone" in out.json["msg"]
