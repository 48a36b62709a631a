"""What a person sees when something is wrong or breaks: a missing NAD, the daemon
killed while pods start, the API server restarted under a running daemon."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from multihome.net import links, netns
from support.kube import Kube, namespace_manifest, pod_manifest, wait_until

NS = "mh-failures"


def bridge_nad(name: str) -> dict[str, object]:
    config = {"cniVersion": "0.3.1", "name": name, "type": "bridge", "bridge": "mh-fail-br"}
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name}, "spec": {"config": json.dumps(config)}}


@pytest.fixture(scope="module")
def ns(cluster: Kube) -> Iterator[str]:
    cluster.apply(namespace_manifest(NS))
    yield NS
    cluster.run("delete", "namespace", NS, "--wait=true", timeout=180)
    with netns.iproute_in(None) as ipr:  # the bridge the plugin made for fail-net
        links.delete_by_name(ipr, "mh-fail-br")


def test_a_pod_naming_a_missing_nad_says_so_and_waits(cluster: Kube, ns: str) -> None:
    created = cluster.run("apply", "-n", ns, "-f", "-",
                          input_text=json.dumps(pod_manifest("lost", "no-such-net")))
    assert "Warning:" in created.stderr and f"{ns}/no-such-net" in created.stderr

    def event() -> dict | None:  # type: ignore[type-arg]
        return next((e for e in cluster.events(ns, "lost")
                     if e["reason"] == "NoNetworkFound"), None)

    found = wait_until(event, 60, "NoNetworkFound event")
    assert found["type"] == "Warning"
    assert "no-such-net" in found["message"] and ns in found["message"]
    sandbox = wait_until(lambda: next((e for e in cluster.events(ns, "lost")
                                       if e["reason"] == "FailedCreatePodSandBox"), None),
                         60, "FailedCreatePodSandBox event")
    assert "no-such-net" in sandbox["message"]
    pod = cluster.get("pod", "lost", ns) or {}
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating"
    cluster.run("delete", "pod", "lost", "-n", ns, timeout=90)


def _daemon_pid(lab_state: str) -> int:
    pid, _ = Path(lab_state, "cluster", "pids", "multihome-daemon.pid").read_text().split()
    return int(pid)


def test_pods_started_while_the_daemon_is_killed_end_up_running(
        cluster: Kube, ns: str, lab_state: str) -> None:
    from multihome.lab.cluster import layout as cluster_layout
    from multihome.lab.cluster import procs, up

    cluster.apply(bridge_nad("fail-net"), namespace=ns)
    names = [f"burst-{i}" for i in range(4)]
    cluster.apply(*(pod_manifest(n, "fail-net") for n in names), namespace=ns)
    time.sleep(1)
    os.kill(_daemon_pid(lab_state), signal.SIGKILL)
    time.sleep(2)  # the runtime's calls now fail with "daemon not reachable" (code 11)
    layout = cluster_layout.load(lab_state)
    assert layout is not None
    up.restart_daemon(layout)
    cluster.wait_running(ns, *names, timeout=180)
    for name in names:
        assert [s["interface"] for s in cluster.network_status(ns, name)] == ["eth0", "net1"]
    cluster.run("delete", "pod", *names, "-n", ns, timeout=120)
    for name in names:
        cluster.wait_gone("pod", name, ns)
    assert procs.pid_of(layout, "multihome-daemon") is not None
    # the kubelet stops sandboxes (CNI DEL) after the pod objects are gone: wait for it
    ports = Path("/sys/class/net/mh-fail-br/brif")
    wait_until(lambda: not list(ports.iterdir()), 60, "CNI DEL of the deleted pods",
               describe=lambda: f"bridge ports left: {sorted(p.name for p in ports.iterdir())}")


def test_the_daemon_recovers_its_watches_after_an_api_server_restart(
        cluster: Kube, ns: str, lab_state: str) -> None:
    from multihome.lab.cluster import layout as cluster_layout
    from multihome.lab.cluster import up

    layout = cluster_layout.load(lab_state)
    assert layout is not None
    daemon_before = _daemon_pid(lab_state)
    up.restart_apiserver(layout)
    # a NAD made after the restart reaches the daemon only through a recovered watch
    cluster.apply(bridge_nad("after-restart"), namespace=ns)
    cluster.apply(pod_manifest("after", "after-restart"), namespace=ns)
    cluster.wait_running(ns, "after", timeout=120)
    assert [s["name"] for s in cluster.network_status(ns, "after")] == \
        ["mh-k8s", f"{ns}/after-restart"]
    assert _daemon_pid(lab_state) == daemon_before
    cluster.run("delete", "pod", "after", "-n", ns, timeout=90)
