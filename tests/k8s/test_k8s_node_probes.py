"""The node controller in Kubernetes mode probes the API server after every apply (the
daemon passes its address): a policy that cuts the node off from it is rolled back and
its enactment is Failing with the probe named. The "API server" the probe checks is a
TCP listener in the namespace playing the LAN; the NNCPs come from the fixture server."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multihome.k8s.client import ApiClient, Credentials
from multihome.k8s.node_policies import NodePolicyController
from multihome.k8s.store import KubeStore
from multihome.node import policy, probes
from support import kstate
from support.fake_apiserver import FakeApiServer
from support.node_world import NodeWorld, make_world, nncp
from support.probe_world import tcp_listener

NNCPS = "/apis/nmstate.io/v1/nodenetworkconfigurationpolicies"
API_PORT = 6443

pytestmark = pytest.mark.netns


@pytest.fixture
def world(netns_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[NodeWorld]:
    w = make_world(netns_factory, tmp_path, random.randint(100, 199))
    for key, value in w.env().items():  # the checkpoint dir of in-process enactments
        if key.startswith("MULTIHOME_"):
            monkeypatch.setenv(key, value)
    w.node.run("ip", "addr", "add", f"{w.net}.0.2/24", "dev", "up0")
    with tcp_listener(w.ext, w.host, API_PORT):
        yield w


@pytest.fixture
def store(apiserver: FakeApiServer) -> Iterator[KubeStore]:
    s = KubeStore(ApiClient(Credentials(server=apiserver.url), timeout_s=5.0), watch=False,
                  retry_delay_s=0.01)
    yield s
    s.shutdown()


def test_a_policy_that_cuts_off_the_api_server_is_rolled_back(
        world: NodeWorld, apiserver: FakeApiServer, store: KubeStore) -> None:
    target = f"{world.host}:{API_PORT}"
    apiserver.put_object(NNCPS, nncp("cut", {
        "interfaces": [{"name": "up0", "state": "down"}],
        "probes": {"default-gateway": False}}))
    before = kstate.snapshot(world.node.name)
    controller = NodePolicyController(store, "n1", netns_path=world.node.path,
                                      probe_defaults=probes.Defaults(api_server=target))
    [nnce] = controller.reconcile()
    state, reason, message = policy.active_condition(nnce)
    assert (state, reason) == ("Failing", "FailedToConfigure")
    assert f"api-server {target} stopped answering" in message
    diff = kstate.snapshot_diff(before, kstate.snapshot(world.node.name))
    assert not diff, "\n".join(diff)


def test_a_policy_that_keeps_the_api_server_reachable_is_applied(
        world: NodeWorld, apiserver: FakeApiServer, store: KubeStore) -> None:
    apiserver.put_object(NNCPS, nncp("route", {
        "routes": {"config": [{"destination": "10.99.0.0/16", "next-hop-interface": "up0"}]},
        "probes": {"default-gateway": False}}))
    controller = NodePolicyController(store, "n1", netns_path=world.node.path,
                                      probe_defaults=probes.Defaults(
                                          api_server=f"https://{world.host}:{API_PORT}"))
    [nnce] = controller.reconcile()
    assert policy.active_condition(nnce)[0] == "Available"
    assert any(r["dst"] == "10.99.0.0/16" for r in kstate.routes(world.node.name))
