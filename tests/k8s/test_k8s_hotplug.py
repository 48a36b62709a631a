"""The daemon's hot-plug watcher: which pods of its node it hot-plugs, and when.

The engine's own work (real links) is the integration and cluster tiers' business; here
the watcher's pass runs against the fake API server and the engine's records on disk,
and the call it makes through the daemon's pool is what is checked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from multihome.attach import engine
from multihome.attach.hotplug import HotplugOutcome
from multihome.attach.multus_config import parse_multus_config
from multihome.attach.plan import PodRef
from multihome.cni.errors import CNIError, InvalidConfig
from multihome.daemon.pool import Busy
from multihome.k8s.client import ApiClient
from multihome.k8s.hotplug import RETRIES, HotplugController
from multihome.k8s.store import KubeStore
from multihome.store import POD
from support.fake_apiserver import FakeApiServer
from support.k8s_objects import PODS, pod, wait_for

NETWORKS = "k8s.v1.cni.cncf.io/networks"


class Pool:
    """Stands in for the daemon's pool: records the containers it was asked to run for."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.busy = False
        self.error: CNIError | None = None  # what the hot-plug raises, if anything

    def run(self, key: str, fn: Callable[[], Any]) -> Any:
        if self.busy:
            raise Busy("full")
        self.keys.append(key)
        if self.error is not None:
            raise self.error
        return HotplugOutcome()


@pytest.fixture
def world(tmp_path: Path, api: ApiClient,
          apiserver: FakeApiServer) -> Iterator[tuple[HotplugController, Pool, dict[str, Any]]]:
    raw = {"cniVersion": "1.0.0", "name": "mh", "type": "multihome",
           "cniDir": str(tmp_path / "cache"),
           "delegates": [{"cniVersion": "1.0.0", "name": "d", "type": "bridge",
                          "bridge": "br-d"}]}
    store = KubeStore(api, "node-a")
    pool = Pool()
    controller = HotplugController(store, lambda: raw, pool.run)
    try:
        yield controller, pool, raw
    finally:
        store.shutdown()


def _attached(raw: dict[str, Any], name: str, cid: str) -> None:
    conf = parse_multus_config(raw)
    engine.save_record(conf, engine.PodRecord(cid, "/proc/self/ns/net", "eth0",
                                              PodRef("default", name), []))


def _annotated(apiserver: FakeApiServer, name: str, value: str, node: str = "node-a") -> None:
    body = pod(name, node)
    body["metadata"]["annotations"] = {NETWORKS: value}
    apiserver.put_object(PODS, body)


def test_an_edited_selection_hot_plugs_the_pods_sandbox_once(
        apiserver: FakeApiServer, world: tuple[HotplugController, Pool, dict[str, Any]]) -> None:
    controller, pool, raw = world
    _annotated(apiserver, "web", "net-a")
    _attached(raw, "web", "c1")
    wait_for(lambda: controller.store.caches[POD].synced
             and controller.store.caches[POD].get("default", "web") is not None)
    assert controller.sync() is False
    assert pool.keys == ["c1"]  # the first sight: edits made while the daemon was down
    assert controller.sync() is False
    assert pool.keys == ["c1"]  # nothing edited: nothing run
    _annotated(apiserver, "web", "net-a,net-b")
    wait_for(lambda: (controller.store.caches[POD].get("default", "web") or {})["metadata"]
             ["annotations"][NETWORKS] == "net-a,net-b")
    controller.sync()
    assert pool.keys == ["c1", "c1"]


def test_pods_not_attached_here_or_going_away_are_left_alone(
        apiserver: FakeApiServer, world: tuple[HotplugController, Pool, dict[str, Any]]) -> None:
    controller, pool, raw = world
    _annotated(apiserver, "pending", "net-a")  # no sandbox yet: its ADD reads the text
    gone = pod("gone")
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    gone["metadata"]["annotations"] = {NETWORKS: "net-a"}
    apiserver.put_object(PODS, gone)
    _attached(raw, "gone", "c2")
    _annotated(apiserver, "elsewhere", "net-a", node="node-b")  # another node's pod
    _attached(raw, "elsewhere", "c3")
    wait_for(lambda: controller.store.caches[POD].synced
             and controller.store.caches[POD].get("default", "gone") is not None)
    controller.sync()
    assert pool.keys == []


def test_a_busy_daemon_is_retried(
        apiserver: FakeApiServer, world: tuple[HotplugController, Pool, dict[str, Any]]) -> None:
    controller, pool, raw = world
    _annotated(apiserver, "web", "net-a")
    _attached(raw, "web", "c1")
    wait_for(lambda: controller.store.caches[POD].synced
             and controller.store.caches[POD].get("default", "web") is not None)
    pool.busy = True
    assert controller.sync() is True  # try again soon
    pool.busy = False
    assert controller.sync() is False
    assert pool.keys == ["c1"]


def test_a_failed_hot_plug_is_tried_again_on_a_few_periodic_passes(
        apiserver: FakeApiServer, world: tuple[HotplugController, Pool, dict[str, Any]]) -> None:
    controller, pool, raw = world
    _annotated(apiserver, "web", "net-a,not-yet")
    _attached(raw, "web", "c1")
    wait_for(lambda: controller.store.caches[POD].synced
             and controller.store.caches[POD].get("default", "web") is not None)
    pool.error = InvalidConfig("NAD default/not-yet not found")
    assert controller.sync() is False  # failed: the pod's events say why
    assert controller.sync() is False
    assert pool.keys == ["c1"]  # a watch event alone does not repeat it
    for _ in range(RETRIES + 2):
        controller.sync(resync=True)
    assert pool.keys == ["c1"] * (1 + RETRIES)  # bounded
    # the NAD now exists and the user edits again: tried at once, and it works
    pool.error = None
    _annotated(apiserver, "web", "not-yet")
    wait_for(lambda: (controller.store.caches[POD].get("default", "web") or {})["metadata"]
             ["annotations"][NETWORKS] == "not-yet")
    controller.sync()
    assert pool.keys == ["c1"] * (2 + RETRIES)
    assert controller.failures == {}
