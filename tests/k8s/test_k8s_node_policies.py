"""NNCP enactment through the Kubernetes API: the store's status subresource, the node
controller (nodeSelector against the Node's labels, maxUnavailable through the NNCP's
resourceVersion) and `multihome --store k8s:<kubeconfig> node enact`, applying to a
namespace that plays the node (tests/integration/node_world.py)."""

from __future__ import annotations

import random
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from multihome.daemon.metrics import NodePolicyMetrics
from multihome.k8s.client import ApiClient, ApiError, Credentials
from multihome.k8s.node_policies import NodePolicyController, start_for_daemon
from multihome.k8s.store import KubeStore, open_kube_store
from multihome.node import policy, rollout
from multihome.store import Conflict, NotFound, Object
from multihome.store.objects import NNCE, NNCP, NNS
from support import kstate
from support.fake_apiserver import FakeApiServer
from support.k8s_objects import kubeconfig, wait_for
from support.node_world import MULTIHOME, NodeWorld, make_world, nncp

NMSTATE = "/apis/nmstate.io"
NNCPS = f"{NMSTATE}/v1/nodenetworkconfigurationpolicies"
NNCES = f"{NMSTATE}/v1beta1/nodenetworkconfigurationenactments"
NNSS = f"{NMSTATE}/v1beta1/nodenetworkstates"
NODES = "/api/v1/nodes"


@pytest.fixture
def stores(apiserver: FakeApiServer) -> Iterator[Callable[[], KubeStore]]:
    """Stores of their own (one per "node"), all closed at the end."""
    made: list[KubeStore] = []

    def make() -> KubeStore:
        made.append(KubeStore(ApiClient(Credentials(server=apiserver.url), timeout_s=5.0),
                              watch=False, retry_delay_s=0.01))
        return made[-1]

    yield make
    for s in made:
        s.shutdown()


def stored(apiserver: FakeApiServer, path: str, name: str) -> dict[str, Any] | None:
    return apiserver.objects.get((path.strip("/"), "", name))


def add_node(apiserver: FakeApiServer, name: str, labels: dict[str, str]) -> None:
    apiserver.put_object(NODES, {"apiVersion": "v1", "kind": "Node",
                                 "metadata": {"name": name, "labels": labels}})


def active(body: dict[str, Any] | None) -> str:
    assert body is not None
    return policy.active_condition(Object.from_manifest(body))[0]


# -- the fixture API server and the store -------------------------------------------------


def test_fake_apiserver_status_subresource_semantics(apiserver: FakeApiServer,
                                                     api: ApiClient) -> None:
    assert {NNCPS.strip("/"), NNCES.strip("/"), NNSS.strip("/")} <= apiserver.status_resources
    body = {"apiVersion": "nmstate.io/v1", "kind": NNCP, "metadata": {"name": "p"},
            "spec": {"a": 1}, "status": {"x": 1}}
    created = api.request("POST", NNCPS, body=body)
    assert "status" not in created and created["metadata"]["generation"] == 1
    main = api.request("PUT", f"{NNCPS}/p", body=dict(created, spec={"a": 2}, status={"x": 2}))
    assert main["spec"] == {"a": 2} and "status" not in main
    assert main["metadata"]["generation"] == 2
    assert int(main["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    sub = api.request("PUT", f"{NNCPS}/p/status", body=dict(main, spec={"a": 3}, status={"x": 3}))
    assert sub["spec"] == {"a": 2} and sub["status"] == {"x": 3}
    assert sub["metadata"]["generation"] == 2
    assert int(sub["metadata"]["resourceVersion"]) > int(main["metadata"]["resourceVersion"])
    for path in (f"{NNCPS}/p", f"{NNCPS}/p/status"):
        with pytest.raises(ApiError) as stale:
            api.request("PUT", path, body=main)  # main's resourceVersion is stale now
        assert stale.value.status == 409
    unversioned = dict(sub, metadata={"name": "p"})
    with pytest.raises(ApiError) as e:
        api.request("PUT", f"{NNCPS}/p", body=unversioned)
    assert e.value.status == 422  # a CRD takes no unconditional update


@pytest.mark.parametrize(("kind", "path"), [(NNCP, NNCPS), (NNS, NNSS), (NNCE, NNCES)])
def test_store_round_trips_cluster_scoped_nmstate_kinds(
        kind: str, path: str, apiserver: FakeApiServer,
        stores: Callable[[], KubeStore]) -> None:
    store = stores()
    version = path.rsplit("/", 2)[-2]
    obj = Object.from_manifest({"apiVersion": f"nmstate.io/{version}", "kind": kind,
                                "metadata": {"name": "n1.x"}, "spec": {"a": 1},
                                "status": {"k": 1}})
    created = store.create(obj)
    assert created.status == {"k": 1}
    assert ("PUT", f"{path}/n1.x/status") in apiserver.requests
    assert not any("/namespaces/" in p for _, p in apiserver.requests)
    assert store.get(kind, "", "n1.x").status == {"k": 1}
    assert [o.name for o in store.list(kind, None)] == ["n1.x"]
    got = store.get(kind, "", "n1.x")
    got.body["status"] = {"k": 2}
    got.body["spec"] = {"a": 2}
    got.labels["l"] = "v"
    updated = store.update(got)  # last write wins: the store reads the resourceVersion
    body = stored(apiserver, path, "n1.x")
    assert body is not None
    assert (body["status"], body["spec"], body["metadata"]["labels"]) == (
        {"k": 2}, {"a": 2}, {"l": "v"})
    with pytest.raises(Conflict):
        store.update(got, expected_version=created.resource_version)
    only_status = store.get(kind, "", "n1.x")
    only_status.body["status"] = {"k": 3}
    writes = len(apiserver.requests)
    store.update(only_status, expected_version=updated.resource_version)
    assert apiserver.requests[writes:] == [("PUT", f"{path}/n1.x/status")]  # one atomic write
    store.delete(kind, "", "n1.x")
    with pytest.raises(NotFound):
        store.get(kind, "", "n1.x")


def test_slot_count_conflicts_are_retried_and_max_unavailable_holds(
        apiserver: FakeApiServer, stores: Callable[[], KubeStore]) -> None:
    first, second = stores(), stores()
    body = nncp("p", {"interfaces": []})
    body["spec"]["maxUnavailable"] = 1
    apiserver.put_object(NNCPS, body)
    pol = first.get(NNCP, "", "p")
    stale = second.get(NNCP, "", "p")
    apiserver.conflicts_to_inject = 2  # other nodes writing the policy status meanwhile
    rollout.claim_slot(first, pol)
    assert first.get(NNCP, "", "p").status["unavailableNodeCountMap"] == {"1": 1}
    stale.body.setdefault("status", {})["unavailableNodeCountMap"] = {"1": 1}
    with pytest.raises(Conflict):  # the API's resourceVersion, not a lock, decides
        second.update(stale, expected_version=stale.resource_version)
    with pytest.raises(rollout.MaxUnavailableReached):
        rollout.claim_slot(second, pol)
    rollout.release_slot(second, pol)
    assert first.get(NNCP, "", "p").status["unavailableNodeCountMap"] == {"1": 0}


def test_racing_nodes_never_exceed_max_unavailable(apiserver: FakeApiServer,
                                                   stores: Callable[[], KubeStore]) -> None:
    body = nncp("p", {"interfaces": []})
    body["spec"]["maxUnavailable"] = 2
    apiserver.put_object(NNCPS, body)
    nodes = [stores() for _ in range(6)]
    got: list[bool] = []
    start = threading.Barrier(len(nodes))

    def claim(store: KubeStore) -> None:
        pol = store.get(NNCP, "", "p")
        start.wait()
        try:
            rollout.claim_slot(store, pol)
            got.append(True)
        except rollout.MaxUnavailableReached:
            got.append(False)

    threads = [threading.Thread(target=claim, args=(s,)) for s in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(got) == [False] * 4 + [True] * 2
    assert nodes[0].get(NNCP, "", "p").status["unavailableNodeCountMap"] == {"1": 2}


# -- the node controller, applying to namespaces that play the nodes ------------------------


@pytest.fixture
def world(netns_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> NodeWorld:
    w = make_world(netns_factory, tmp_path, random.randint(200, 250))
    for key, value in w.env().items():  # the checkpoint dir of in-process enactments
        if key.startswith("MULTIHOME_"):
            monkeypatch.setenv(key, value)
    return w


@pytest.fixture
def second(netns_factory: Any, tmp_path: Path) -> NodeWorld:
    return make_world(netns_factory, tmp_path, random.randint(150, 199))


@pytest.mark.netns
def test_controller_enacts_only_the_policy_selecting_its_node(
        world: NodeWorld, apiserver: FakeApiServer, stores: Callable[[], KubeStore]) -> None:
    add_node(apiserver, "n1", {"role": "edge"})
    apiserver.put_object(NNCPS, nncp("mine", world.bridge_policy("br0", ["up0"]),
                                      {"role": "edge"}))
    apiserver.put_object(NNCPS, nncp("theirs", world.bridge_policy("br1", []),
                                      {"role": "core"}))
    controller = NodePolicyController(stores(), "n1", netns_path=world.node.path)
    assert controller.due() == ["mine", "theirs"]  # "theirs" selects no node: Ignored
    nnces = controller.reconcile()
    assert [(e.name, policy.active_condition(e)[0]) for e in nnces] == [
        ("n1.mine", "Available")]
    assert active(stored(apiserver, NNCES, "n1.mine")) == "Available"
    assert stored(apiserver, NNCES, "n1.theirs") is None
    assert kstate.link(world.node.name, "up0")["master"] == "br0"
    assert kstate.link(world.node.name, "br1") is None
    nns = stored(apiserver, NNSS, "n1")
    assert nns is not None
    assert "br0" in {i["name"] for i in nns["status"]["currentState"]["interfaces"]}
    assert active(stored(apiserver, NNCPS, "mine")) == "Available"
    assert active(stored(apiserver, NNCPS, "theirs")) == "Ignored"
    assert controller.due() == []  # the next pass has nothing to do: no churn


@pytest.mark.netns
def test_failed_node_fills_max_unavailable_and_the_next_node_aborts(
        world: NodeWorld, second: NodeWorld, apiserver: FakeApiServer,
        stores: Callable[[], KubeStore]) -> None:
    add_node(apiserver, "n1", {})
    add_node(apiserver, "n2", {})
    m1, m2 = NodePolicyMetrics(), NodePolicyMetrics()
    n1 = NodePolicyController(stores(), "n1", netns_path=world.node.path, metrics=m1)
    n2 = NodePolicyController(stores(), "n2", netns_path=second.node.path, metrics=m2)
    # n1 reaches the external host first, so the probe of the next policy counts
    apiserver.put_object(NNCPS, nncp("ok", world.bridge_policy("br0", ["up0"]),
                                      {"kubernetes.io/hostname": "n1"}))
    assert [policy.active_condition(e)[0] for e in n1.reconcile()] == ["Available"]
    cut = nncp("cut", world.bridge_policy("br0", []))  # cuts n1 off: the probe fails
    cut["spec"]["maxUnavailable"] = 1
    apiserver.put_object(NNCPS, cut)
    assert [policy.active_condition(e)[0] for e in n1.reconcile()] == ["Failing"]
    assert world.pings_host()  # rolled back
    before = kstate.links(second.node.name)
    nnces = n2.reconcile()
    assert [policy.active_condition(e)[:2] for e in nnces] == [
        ("Aborted", "ConfigurationAborted")]
    assert "1 node(s) failed this policy, maxUnavailable is 1" in \
        policy.active_condition(nnces[0])[2]
    assert kstate.links(second.node.name).keys() == before.keys()  # n2 was not touched
    body = stored(apiserver, NNCPS, "cut")
    assert body is not None
    assert body["status"]["unavailableNodeCountMap"] == {"1": 1}
    assert active(body) == "Degraded"
    assert n1.due() == [] and n2.due() == []  # Failing and Aborted wait for a new generation
    assert (m1.applies.value("applied"), m1.applies.value("rolled_back")) == (1, 1)
    assert m1.enactments.value("Available") == 1 and m1.enactments.value("Failing") == 1
    assert m2.applies.value("applied") + m2.applies.value("rolled_back") == 0
    assert m2.enactments.value("Aborted") == 1 and m2.enactments.value("Available") == 0


@pytest.mark.netns
def test_started_controller_acts_on_a_new_policy_from_the_watch(
        world: NodeWorld, apiserver: FakeApiServer, stores: Callable[[], KubeStore]) -> None:
    add_node(apiserver, "n1", {})
    controller = NodePolicyController(stores(), "n1", netns_path=world.node.path,
                                      resync_s=600)
    controller.start()
    try:
        wait_for(lambda: stored(apiserver, NNSS, "n1") is not None, 20)
        apiserver.put_object(NNCPS, nncp("late", world.bridge_policy("br0", ["up0"],
                                                                     probes=False)))
        wait_for(lambda: (stored(apiserver, NNCES, "n1.late") or {}).get("status", {})
                 .get("conditions") is not None
                 and active(stored(apiserver, NNCES, "n1.late")) == "Available", 30)
    finally:
        controller.stop()
    assert kstate.link(world.node.name, "up0")["master"] == "br0"


@pytest.mark.netns
def test_cli_enact_against_the_api(world: NodeWorld, apiserver: FakeApiServer,
                                   tmp_path: Path) -> None:
    add_node(apiserver, "n1", {"role": "edge"})
    apiserver.put_object(NNCPS, nncp("p", world.bridge_policy("br0", ["up0"]),
                                      {"role": "edge"}))
    cfg = kubeconfig(tmp_path, apiserver)
    proc = subprocess.run([*MULTIHOME, "--store", f"k8s:{cfg}", "node", "--netns",
                           world.node.name, "enact", "--node", "n1"],
                          capture_output=True, text=True, env=world.env(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "n1.p: Available" in proc.stdout
    assert active(stored(apiserver, NNCES, "n1.p")) == "Available"
    assert ("PUT", f"{NNCES}/n1.p/status") in apiserver.requests
    assert stored(apiserver, NNSS, "n1") is not None
    assert kstate.link(world.node.name, "up0")["master"] == "br0"


def test_daemon_starts_the_controller_in_kubernetes_mode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, apiserver: FakeApiServer) -> None:
    assert start_for_daemon("/var/lib/multihome/store.db") is None  # SQLite mode: nothing
    add_node(apiserver, "node-d", {})
    monkeypatch.setenv("NODE_NAME", "node-d")
    spec = f"k8s:{kubeconfig(tmp_path, apiserver)}"
    controller = start_for_daemon(spec)
    assert controller is not None
    try:  # no policies: it reports the node's state (read only)
        wait_for(lambda: stored(apiserver, NNSS, "node-d") is not None, 20)
    finally:
        controller.stop()
        open_kube_store(spec[4:]).shutdown()


def policy_conditions(apiserver: FakeApiServer, name: str) -> dict[str, tuple[str, str]]:
    body = stored(apiserver, NNCPS, name)
    assert body is not None
    return {c["type"]: (c["status"], c["reason"]) for c in body["status"]["conditions"]}


def test_policy_selecting_no_listed_node_is_ignored_once(
        apiserver: FakeApiServer, stores: Callable[[], KubeStore]) -> None:
    add_node(apiserver, "n1", {"role": "edge"})
    add_node(apiserver, "n2", {"role": "edge"})
    apiserver.put_object(NNCPS, nncp("core", {"interfaces": []}, {"role": "core"}))
    controller = NodePolicyController(stores(), "n1", netns_path="/nonexistent")
    assert controller.due() == ["core"]
    assert policy.enact(controller.store, controller.due(), node="n1") == []
    assert stored(apiserver, NNCES, "n1.core") is None
    conds = policy_conditions(apiserver, "core")
    assert conds["Ignored"] == ("True", "NoMatchingNode")
    assert conds["Available"][0] == conds["Degraded"][0] == conds["Progressing"][0] == "False"
    body = stored(apiserver, NNCPS, "core")
    assert body is not None
    assert "no node matches its nodeSelector" in policy.active_condition(
        Object.from_manifest(body))[2]
    assert controller.due() == []  # marked once: not written again on every pass
    assert NodePolicyController(stores(), "n2").due() == []  # nor by the other nodes


@pytest.mark.netns
def test_ignored_policy_is_enacted_when_a_node_comes_to_match(
        world: NodeWorld, apiserver: FakeApiServer, stores: Callable[[], KubeStore]) -> None:
    add_node(apiserver, "n1", {"role": "edge"})
    apiserver.put_object(NNCPS, nncp("p", world.bridge_policy("br0", ["up0"], probes=False),
                                      {"role": "core"}))
    metrics = NodePolicyMetrics()
    controller = NodePolicyController(stores(), "n1", netns_path=world.node.path,
                                      metrics=metrics)
    assert controller.reconcile() == []
    assert policy_conditions(apiserver, "p")["Ignored"] == ("True", "NoMatchingNode")
    assert metrics.enactments.value("Available") == 0
    add_node(apiserver, "n1", {"role": "core"})
    assert controller.due() == ["p"]
    assert [policy.active_condition(e)[0] for e in controller.reconcile()] == ["Available"]
    conds = policy_conditions(apiserver, "p")
    assert conds["Available"] == ("True", "SuccessfullyConfigured")
    assert conds["Ignored"][0] == "False"
    assert kstate.link(world.node.name, "up0")["master"] == "br0"
    assert metrics.enactments.value("Available") == 1
    assert metrics.applies.value("applied") == 1


# -- invalid policies: the controller survives and says why, per policy ------------------

MALFORMED_SPECS: list[dict[str, Any]] = [
    {"nodeSelector": ["role"]}, {"nodeSelector": {"role": 5}},
    {"maxUnavailable": {"x": 1}}, {"maxUnavailable": "abc%"}, {"maxUnavailable": True},
    {"desiredState": "text"}, {"desiredState": {"interfaces": [5]}},
    {"desiredState": {"interfaces": [{"name": "x", "type": "linux-bridge",
                                      "bridge": {"port": "up0"}}]}},
    {"desiredState": {"routes": {"config": "x"}}},
]


def _malformed_nncp(i: int, spec: dict[str, Any]) -> dict[str, Any]:
    body = nncp(f"bad{i}", {"interfaces": []})
    body["spec"].update(spec)
    return body


@pytest.mark.netns
def test_malformed_policies_are_degraded_and_the_others_enacted(
        world: NodeWorld, apiserver: FakeApiServer, stores: Callable[[], KubeStore]) -> None:
    add_node(apiserver, "n1", {"role": "edge"})
    for i, spec in enumerate(MALFORMED_SPECS):
        apiserver.put_object(NNCPS, _malformed_nncp(i, spec))
    # "zz" sorts after every bad one: it is enacted after them
    apiserver.put_object(NNCPS, nncp("zz-good", world.bridge_policy("br0", ["up0"],
                                                                     probes=False)))
    controller = NodePolicyController(stores(), "n1", netns_path=world.node.path)
    controller.reconcile()
    assert active(stored(apiserver, NNCES, "n1.zz-good")) == "Available"
    assert kstate.link(world.node.name, "up0")["master"] == "br0"
    for i in range(len(MALFORMED_SPECS)):
        body = stored(apiserver, NNCPS, f"bad{i}")
        assert body is not None
        state, _, message = policy.active_condition(Object.from_manifest(body))
        assert state == "Degraded" and f"policy bad{i} is invalid" in message, message
        nnce = stored(apiserver, NNCES, f"n1.bad{i}")
        assert active(nnce) == "Failing"
    assert controller.due() == []  # reported once per generation, not retried in a loop


@pytest.mark.netns
def test_a_started_controller_outlives_a_malformed_policy(
        world: NodeWorld, apiserver: FakeApiServer, stores: Callable[[], KubeStore]) -> None:
    add_node(apiserver, "n1", {})
    apiserver.put_object(NNCPS, _malformed_nncp(0, {"nodeSelector": ["x"]}))
    controller = NodePolicyController(stores(), "n1", netns_path=world.node.path,
                                      resync_s=600)
    controller.start()
    try:
        wait_for(lambda: stored(apiserver, NNCES, "n1.bad0") is not None, 20)
        apiserver.put_object(NNCPS, nncp("later", world.bridge_policy("br0", ["up0"],
                                                                      probes=False)))
        wait_for(lambda: (stored(apiserver, NNCES, "n1.later") or {}).get("status", {})
                 .get("conditions") is not None
                 and active(stored(apiserver, NNCES, "n1.later")) == "Available", 30)
        assert controller._thread.is_alive()
    finally:
        controller.stop()


def test_the_slot_count_gives_up_after_bounded_conflicts(
        apiserver: FakeApiServer, stores: Callable[[], KubeStore],
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = stores()
    apiserver.put_object(NNCPS, nncp("p", {"interfaces": []}))
    calls = []

    def always_conflicting(obj: Object, expected_version: str | None = None) -> Object:
        calls.append(1)
        raise Conflict(NNCP, "", obj.name, 1, 2)

    monkeypatch.setattr(store, "update", always_conflicting)
    monkeypatch.setattr(rollout, "CONFLICT_WAIT_S", 0.0)
    with pytest.raises(Conflict):
        rollout.claim_slot(store, store.get(NNCP, "", "p"))
    assert len(calls) == rollout.MAX_CONFLICTS
