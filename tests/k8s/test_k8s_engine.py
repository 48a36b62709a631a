"""The engine's plan and network-status write through the Kubernetes store."""

from __future__ import annotations

import json
from pathlib import Path

from multihome.attach import engine
from multihome.attach.multus_config import parse_multus_config
from multihome.attach.plan import PodRef, plan
from multihome.attach.status import NETWORK_STATUS_ANNOTATION
from multihome.k8s.store import KubeStore
from multihome.store import POD
from multihome.stores import open_store
from support.fake_apiserver import FakeApiServer
from support.k8s_objects import NADS, PODS, kubeconfig, nad, pod, wait_for


def test_multus_kubeconfig_key_plans_and_writes_status(tmp_path: Path,
                                                       apiserver: FakeApiServer) -> None:
    p = pod("web", node="")
    p["metadata"]["annotations"] = {"k8s.v1.cni.cncf.io/networks": "net1"}
    apiserver.put_object(PODS, p)
    apiserver.put_object(NADS, nad("net1"))
    conf = parse_multus_config({
        "cniVersion": "1.0.0", "name": "multus", "type": "multihome",
        "kubeconfig": str(kubeconfig(tmp_path, apiserver)),
        "cniDir": str(tmp_path / "cache"),
        "delegates": [{"cniVersion": "1.0.0", "name": "default", "type": "bridge",
                       "bridge": "br-default"}],
    })
    store = open_store(conf.store)
    assert isinstance(store, KubeStore)
    try:
        atts = plan(conf, store, PodRef("default", "web"))
        assert [(a.network, a.ifname) for a in atts] == [
            ("default", "eth0"), ("default/net1", "net1")]
        status = [{"name": "default/net1", "interface": "net1", "ips": ["10.9.0.2"]}]
        engine.write_status(store, PodRef("default", "web"), json.dumps(status))
        stored = apiserver.objects[("api/v1/pods", "default", "web")]
        assert json.loads(stored["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION]) \
            == status
        # the caches see our write through the watch, too
        wait_for(lambda: NETWORK_STATUS_ANNOTATION in store.get(POD, "default", "web")
                 .annotations)
        store.close()  # what the engine does after each request: the shared store stays
        assert open_store(conf.store) is store
    finally:
        store.shutdown()
    assert ("PATCH", f"{PODS}/web") in apiserver.requests
