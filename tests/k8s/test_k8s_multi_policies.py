"""The daemon's MultiNetworkPolicy controller against the API fixture: policies, pods and
namespaces come through watches, every change makes a pass over this node's attachments
(the engine's records under the daemon's CNI dir; none here, so nothing reaches the
kernel), and an invalid policy is skipped without stopping the others."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from multihome.k8s.client import ApiClient, Credentials
from multihome.k8s.multi_policies import MultiPolicyController
from multihome.k8s.store import KubeStore
from support.fake_apiserver import FakeApiServer
from support.k8s_objects import wait_for

POLICIES = "/apis/k8s.cni.cncf.io/v1beta1/namespaces/blue/multi-networkpolicies"


@pytest.fixture
def controller(apiserver: FakeApiServer, tmp_path: Path) -> Iterator[MultiPolicyController]:
    store = KubeStore(ApiClient(Credentials(server=apiserver.url), timeout_s=5.0),
                      watch=False, retry_delay_s=0.01)
    c = MultiPolicyController(store, str(tmp_path / "cni"), resync_s=30.0)
    c.start()
    try:
        yield c
    finally:
        c.stop()
        store.shutdown()


def _policy(name: str, spec: object) -> dict[str, object]:
    return {"apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy",
            "metadata": {"name": name, "namespace": "blue", "annotations": {
                "k8s.v1.cni.cncf.io/policy-for": "br-net"}}, "spec": spec}


def test_watched_objects_make_the_world_and_changes_make_passes(
        apiserver: FakeApiServer, controller: MultiPolicyController) -> None:
    wait_for(lambda: controller.passes >= 1)
    apiserver.put_object("/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "blue", "labels": {"team": "x"}}})
    status = [{"name": "blue/br-net", "interface": "net1", "ips": ["10.1.0.5"]}]
    apiserver.put_object("/api/v1/namespaces/blue/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "db", "namespace": "blue", "labels": {"app": "db"},
            "annotations": {"k8s.v1.cni.cncf.io/network-status": json.dumps(status)}},
        "spec": {"containers": [{"name": "c"}]}})
    apiserver.put_object(POLICIES, _policy("good", {"podSelector": {}}))
    apiserver.put_object(POLICIES, _policy("bad", {"podSelector": {}, "ingress": [
        {"from": [{}]}]}))
    before = controller.passes
    wait_for(lambda: controller.passes > before and len(controller.world().policies) == 1)

    world = controller.world()
    assert [p.key for p in world.policies] == ["blue/good"]
    assert world.namespaces["blue"] == {"team": "x"}
    assert [(p.key, [str(ip) for ip in p.addresses["blue/br-net"]]) for p in world.pods] == [
        ("blue/db", ["10.1.0.5"])]
    assert controller.last is not None and controller.last.errors == []
    assert controller.errors == 0
