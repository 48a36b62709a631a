"""MultiNetworkPolicy on a real cluster: kubectl applies the policy, the daemon (watching
policies, pods and namespaces through the API) programs the node, and real pings show
the allowed and the denied flow; deleting the policy opens the pod again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from multihome.attach.policy.cleanup import tables
from multihome.net import links, netns
from support.kube import Kube, namespace_manifest, pod_manifest, wait_until

NS = "mnp-test"
BRIDGE = "mh-mnp0"


def _labelled(name: str, app: str) -> dict[str, Any]:
    pod = pod_manifest(name, "mnp-net", net_admin=True)
    pod["metadata"]["labels"] = {"app": app}
    return pod


@pytest.fixture(scope="module")
def pods(cluster: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    # host-local's allocations stay the test's, never the node's /var/lib/cni
    ipam_dir = str(tmp_path_factory.mktemp("mnp-ipam"))
    cluster.apply(namespace_manifest(NS))
    cluster.apply({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                   "metadata": {"name": "mnp-net"}, "spec": {"config": json.dumps({
                       "cniVersion": "0.3.1", "name": "mnp-net", "type": "bridge",
                       "bridge": BRIDGE, "ipam": {"type": "host-local",
                                                  "subnet": "10.176.0.0/24",
                                                  "dataDir": ipam_dir}})}},
                  namespace=NS)
    try:
        cluster.apply(_labelled("db", "db"), _labelled("web", "web"), _labelled("cli", "cli"),
                      namespace=NS)
        cluster.wait_running(NS, "db", "web", "cli")
        yield {p: next(s["ips"][0] for s in cluster.network_status(NS, p)
                       if s["name"] == f"{NS}/mnp-net") for p in ("db", "web", "cli")}
    finally:
        cluster.run("delete", "namespace", NS, "--wait=true", timeout=180, check=False)
        with netns.iproute_in(None) as ipr:
            links.delete_by_name(ipr, BRIDGE)


def _ping(cluster: Kube, pod: str, ip: str) -> bool:
    return cluster.exec(NS, pod, "ping", "-c", "1", "-W", "1", ip, check=False).returncode == 0


def test_policy_through_the_api_isolates_a_pod_and_deleting_it_opens_it(
        cluster: Kube, pods: dict[str, str]) -> None:
    db = pods["db"]
    assert _ping(cluster, "cli", db)
    cluster.apply({"apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy",
                   "metadata": {"name": "db-from-web", "annotations": {
                       "k8s.v1.cni.cncf.io/policy-for": "mnp-net"}},
                   "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                            "ingress": [{"from": [{"podSelector": {
                                "matchLabels": {"app": "web"}}}]}]}}, namespace=NS)
    assert cluster.run("get", "multi-policy", "-n", NS).stdout.split()[:2] == ["NAME", "AGE"]
    wait_until(lambda: not _ping(cluster, "cli", db) or None, 30, "cli denied by the policy")
    assert _ping(cluster, "web", db)
    assert len(tables("mhpol_")) >= 1
    cluster.run("delete", "multi-policy", "db-from-web", "-n", NS)
    wait_until(lambda: _ping(cluster, "cli", db) or None, 30, "cli allowed again")
    bad = cluster.run("apply", "-n", NS, "-f", "-", check=False, input_text=json.dumps({
        "apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy",
        "metadata": {"name": "bad"}, "spec": {"podSelector": {}, "ingress": [{"from": [{}]}]}}))
    assert bad.returncode != 0 and "must specify a peer" in bad.stderr
