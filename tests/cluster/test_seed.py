"""The seed's flow on a real cluster, with kubectl, as the design describes it:
the NAD verbatim, the node bridge from a NodeNetworkConfigurationPolicy, two pods with
eth0 + net1 on dev-bridge that reach each other and the external host, and nothing left
behind when they are deleted."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from multihome.net import links, netns
from support.kube import Kube, namespace_manifest, pod_manifest, wait_until

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "linux-bridge-dev.yml"
NS = "multus-test"
BRIDGE_RESOURCE = "bridge.network.kubevirt.io/dev-bridge"


@pytest.fixture(scope="module")
def seed_ns(cluster: Kube) -> Iterator[str]:
    cluster.apply(namespace_manifest(NS))
    yield NS
    cluster.run("delete", "namespace", NS, "--wait=true", timeout=180)


@pytest.fixture(scope="module")
def node_bridges(cluster: Kube) -> Iterator[None]:
    """dev-bridge (uplink to the external network) and the seed's bridge-dev resource."""
    cluster.run("apply", "-f", str(REPO / "examples" / "dev-bridge-policy.yml"))
    cluster.run("apply", "-f", str(REPO / "examples" / "bridge-dev-resource-policy.yml"))
    yield
    for name in ("dev-bridge-policy", "bridge-dev-resource"):
        cluster.run("delete", "nncp", name, check=False)
    # a deleted policy leaves its interfaces (nmstate's rule); `lab down` removes
    # dev-bridge with the lab's world, the seed's extra bridge is this module's to remove
    with netns.iproute_in(None) as ipr:
        links.delete_by_name(ipr, "bridge-dev")


def test_seed_nad_is_created_and_listed_with_kubectl(cluster: Kube, seed_ns: str) -> None:
    created = cluster.run("create", "-f", str(SEED), "-n", seed_ns)
    assert created.stdout.strip() == \
        "networkattachmentdefinition.k8s.cni.cncf.io/bridge-dev created"
    listed = cluster.run("get", "net-attach-def", "-n", seed_ns).stdout.splitlines()
    assert listed[0].split() == ["NAME", "AGE"]
    assert listed[1].split()[0] == "bridge-dev"


def test_node_policy_makes_dev_bridge_and_publishes_it(cluster: Kube,
                                                       node_bridges: None) -> None:
    def enactment() -> str:  # what the node said, when it never becomes Available
        nnce = cluster.get("nnce", "mh-lab-node.dev-bridge-policy") or {}
        return json.dumps(nnce.get("status", {}).get("conditions"))

    wait_until(lambda: _condition(cluster.get("nnce", "mh-lab-node.dev-bridge-policy"),
                                  "Available"), 90, "NNCE mh-lab-node.dev-bridge-policy Available",
               describe=enactment)
    wait_until(lambda: _condition(cluster.get("nncp", "dev-bridge-policy"), "Available"),
               60, "NNCP dev-bridge-policy Available")
    ports = Path("/sys/class/net/dev-bridge/brif")
    assert sorted(p.name for p in ports.iterdir()) == ["dev-bridge-up"]
    assert Path("/sys/class/net/dev-bridge-up/operstate").read_text().strip() == "up"
    capacity = wait_until(lambda: _capacity(cluster, BRIDGE_RESOURCE), 60,
                          f"node capacity {BRIDGE_RESOURCE}")
    assert capacity == "1k"


def _condition(obj: dict | None, kind: str) -> bool:  # type: ignore[type-arg]
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _capacity(cluster: Kube, resource: str) -> str | None:
    node = cluster.get("node", "mh-lab-node") or {}
    value = node.get("status", {}).get("capacity", {}).get(resource)
    return str(value) if value else None


@pytest.fixture(scope="module")
def seed_pods(cluster: Kube, seed_ns: str, node_bridges: None) -> Iterator[list[str]]:
    if cluster.get("net-attach-def", "bridge-dev", seed_ns) is None:
        cluster.run("create", "-f", str(SEED), "-n", seed_ns)
    wait_until(lambda: _capacity(cluster, "bridge.network.kubevirt.io/bridge-dev"), 90,
               "node capacity for the seed's resource bridge-dev")
    names = ["pod-a", "pod-b"]
    cluster.apply(*(pod_manifest(n, "bridge-dev", net_admin=True) for n in names),
                  namespace=seed_ns)
    cluster.wait_running(seed_ns, *names)
    yield names
    cluster.run("delete", "pod", *names, "-n", seed_ns, "--ignore-not-found", timeout=120)


def test_pods_get_eth0_and_net1_on_dev_bridge(cluster: Kube, seed_ns: str,
                                             seed_pods: list[str]) -> None:
    out = cluster.exec(seed_ns, "pod-a", "ip", "address").stdout
    assert re.search(r"^2: eth0@if\d+:", out, re.M), out
    assert re.search(r"^3: net1@if\d+:", out, re.M), out
    status = cluster.network_status(seed_ns, "pod-a")
    assert [(s["name"], s["interface"], s.get("default", False)) for s in status] == [
        ("mh-k8s", "eth0", True), (f"{seed_ns}/bridge-dev", "net1", False)]
    pod = cluster.get("pod", "pod-a", seed_ns) or {}
    assert status[0]["ips"] == [pod["status"]["podIP"]]
    assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", status[1]["mac"])
    # net1's host end is a port of dev-bridge, the bridge the NAD's config names
    ports = {p.name for p in Path("/sys/class/net/dev-bridge/brif").iterdir()}
    assert len(ports) == 1 + len(seed_pods)


def test_added_interface_events_are_multus_events(cluster: Kube, seed_ns: str,
                                                  seed_pods: list[str]) -> None:
    events = [e for e in cluster.events(seed_ns, "pod-a") if e["reason"] == "AddedInterface"]
    messages = sorted(e["message"] for e in events)
    assert any(re.fullmatch(r"Add eth0 \[10\.244\.0\.\d+/24\] from mh-k8s", m)
               for m in messages), messages
    assert f"Add net1 [] from {seed_ns}/bridge-dev" in messages, messages
    assert {e["source"].get("component") or e.get("reportingComponent") for e in events} \
        == {"multus"}


def test_pods_reach_each_other_and_the_external_host_over_net1(
        cluster: Kube, seed_ns: str, seed_pods: list[str]) -> None:
    # the seed NAD has no IPAM: addresses by hand, as its users do on such networks
    for i, pod in enumerate(seed_pods):
        cluster.exec(seed_ns, pod, "ip", "address", "add", f"10.250.0.{11 + i}/24",
                     "dev", "net1")
    ping_peer = cluster.exec(seed_ns, "pod-a", "ping", "-c", "2", "-W", "3", "10.250.0.12",
                             check=False)
    assert ping_peer.returncode == 0, ping_peer.stdout + ping_peer.stderr
    ping_external = cluster.exec(seed_ns, "pod-b", "ping", "-c", "2", "-W", "3", "10.250.0.1",
                                 check=False)
    assert ping_external.returncode == 0, ping_external.stdout + ping_external.stderr


def test_deleting_a_pod_leaves_nothing_behind(cluster: Kube, seed_ns: str,
                                              node_bridges: None, lab_state: str) -> None:
    if cluster.get("net-attach-def", "bridge-dev", seed_ns) is None:
        cluster.run("create", "-f", str(SEED), "-n", seed_ns)
    cluster.apply(pod_manifest("short-lived", "bridge-dev"), namespace=seed_ns)
    cluster.wait_running(seed_ns, "short-lived")
    ids = _container_ids(lab_state, "short-lived")
    assert ids, "the engine cached no attachment for the pod"
    ports_before = _bridge_ports()
    cluster.run("delete", "pod", "short-lived", "-n", seed_ns, timeout=120)
    cluster.wait_gone("pod", "short-lived", seed_ns)
    # the kubelet removes the pod object before it stops the sandbox (CNI DEL): wait
    wait_until(lambda: not _traces(lab_state, ids), 60, "CNI DEL of the deleted pod",
               describe=lambda: f"left: {_traces(lab_state, ids)}")
    assert len(_bridge_ports()) == len(ports_before) - 2  # its eth0 and net1 host ends


def _container_ids(state: str, pod: str) -> set[str]:
    """Sandbox ids of `pod`, from the engine's attachment cache (its K8S_POD_NAME)."""
    ids = set()
    for path in Path(state, "cluster", "cni", "cache").rglob("*"):
        if path.is_file() and f'"{pod}"' in path.read_text(errors="replace"):
            ids |= set(re.findall(r"[0-9a-f]{64}", path.name + path.read_text(errors="replace")))
    return ids


def _bridge_ports() -> set[str]:
    ports = set()
    for bridge in ("dev-bridge", "mh-k8s0"):
        ports |= {p.name for p in Path(f"/sys/class/net/{bridge}/brif").iterdir()}
    return ports


def _traces(state: str, ids: set[str]) -> list[str]:
    """Every place a container id can survive: cache and IPAM files, libcni's result
    cache, nftables rules (macspoofchk comments name the container)."""
    found = []
    for root in (Path(state, "cluster", "cni"), Path(state, "cluster", "ipam"),
                 Path("/var/lib/cni")):
        for path in root.rglob("*") if root.exists() else []:
            if not path.is_file():
                continue
            try:
                text = path.name + path.read_text(errors="replace")[:65536]
            except OSError:
                continue
            found += [f"{path}: {i[:12]}" for i in ids if i in text]
    rules = subprocess.run(["nft", "-j", "list", "ruleset"], capture_output=True, text=True,
                           check=True).stdout
    found += [f"nft: {i[:12]}" for i in ids if i[:12] in rules or i in rules]
    json.loads(rules)  # the ruleset was read whole
    return found
