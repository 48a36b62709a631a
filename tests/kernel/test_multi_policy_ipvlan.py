"""Debian-kernel tier: MultiNetworkPolicy on an ipvlan network (the development VM's
kernel has no ipvlan). Rules go into the pod's namespace, as for macvlan: the selected
pod answers the allowed peer and not the other one, and is open again without the
policy. Driven in-process through attach.policy.enforce, with the store and the engine
records the lab would hold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multihome.attach.engine import PodRecord
from multihome.attach.plan import Attachment, PodRef
from multihome.attach.policy import enforce
from multihome.store import MULTI_POLICY, POD, Object
from multihome.store.sqlite import SQLiteStore
from support import kstate
from support.netns import Netns, unique
from support.plugin_harness import call, conf, static_ipam

pytestmark = pytest.mark.netns

NETWORK = "default/ipv-net"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store.db")
    try:
        yield s
    finally:
        s.close()


def _pod(store: SQLiteStore, name: str, app: str, ip: str) -> None:
    status = [{"name": NETWORK, "interface": "eth0", "ips": [ip]}]
    store.apply(Object.from_manifest({"apiVersion": "v1", "kind": POD, "metadata": {
        "name": name, "namespace": "default", "labels": {"app": app},
        "annotations": {"k8s.v1.cni.cncf.io/network-status": json.dumps(status)}}}))


def test_ipvlan_pod_isolated_in_its_namespace(netns_factory: Any,
                                              store: SQLiteStore) -> None:
    node: Netns = netns_factory("mkn")
    pods = {name: netns_factory("mkc") for name in ("db", "web", "cli")}
    master = unique("dm")
    node.run("ip", "link", "add", master, "type", "dummy")
    node.run("ip", "link", "set", master, "up")
    records = []
    for i, (name, ns) in enumerate(pods.items()):
        ip = f"10.92.0.{2 + i}"
        c = conf("ipvlan", master=master, mode="l2", ipam=static_ipam(f"{ip}/24"))
        call(node, "ADD", c, netns_path=ns.path, cid=f"c{i}").ok()
        _pod(store, name, name, ip)
        records.append(PodRecord(f"c{i}", ns.path, "eth0", PodRef("default", name), [],
                                 [Attachment(NETWORK, "eth0", {**c, "plugins": [c]})]))
    store.apply(Object.from_manifest({
        "apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": MULTI_POLICY,
        "metadata": {"name": "db-from-web", "namespace": "default",
                     "annotations": {"k8s.v1.cni.cncf.io/policy-for": "ipv-net"}},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}}))
    report = enforce.sync(store, records)
    assert report.errors == [] and len(report.programmed) == 1
    assert kstate.ping(pods["web"].name, "10.92.0.2")
    assert not kstate.ping(pods["cli"].name, "10.92.0.2")
    assert kstate.ping(pods["db"].name, "10.92.0.4")  # db's egress is open; replies pass
    store.delete(MULTI_POLICY, "default", "db-from-web")
    report = enforce.sync(store, records)
    assert report.errors == [] and len(report.programmed) == 1  # the table removed
    assert kstate.ping(pods["cli"].name, "10.92.0.2")
