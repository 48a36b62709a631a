"""Multus thick (built from its Go module at its release tag) and multihome on the same
cluster, with the same NADs and pods: what each writes to the pod (network-status) and
the events it records must match field for field, MACs, IPs and ids aside."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from multihome.lab.cluster import up
from multihome.net import links, netns
from support.kube import Kube, namespace_manifest, pod_manifest, wait_until

SEED_CONFIG = {"cniVersion": "0.3.1", "name": "seed-like", "type": "cnv-bridge",
               "bridge": "mh-sbs-seed", "macspoofchk": True, "vlan": 0}
NADS: dict[str, dict[str, Any]] = {
    "plain-br": {"cniVersion": "0.3.1", "name": "plain-br", "type": "bridge",
                 "bridge": "mh-sbs-br"},
    "ipam-br": {"cniVersion": "0.3.1", "name": "ipam-br", "type": "bridge",
                "bridge": "mh-sbs-ipam", "capabilities": {"ips": True},
                "ipam": {"type": "static"}},
    "seed-like": SEED_CONFIG,
}
PODS = {
    "comma": "plain-br,seed-like@extra1",
    "json": json.dumps([
        {"name": "ipam-br", "interface": "data0", "ips": ["10.251.0.10/24"]},
        {"name": "plain-br", "mac": "02:11:22:33:44:55"},
    ]),
}
MISSING = "nope"


@dataclass
class Observed:
    status: dict[str, list[dict[str, Any]]]
    events: dict[str, list[tuple[str, str, str]]]


def _nad(name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name}, "spec": {"config": json.dumps(config)}}


def _normal_status(entries: list[dict[str, Any]], ns: str) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        e = dict(entry)
        e["name"] = str(e.get("name", "")).replace(f"{ns}/", "NS/")
        if e.get("interface") == "eth0" and "ips" in e:
            e["ips"] = ["<pod ip>" for _ in e["ips"]]
        if "mac" in e and e["mac"] != "02:11:22:33:44:55":
            e["mac"] = "<mac>"
        out.append(e)
    return out


def _normal_message(text: str, ns: str) -> str:
    text = text.replace(f"{ns}/", "NS/").replace(f"({ns})", "(NS)")
    return re.sub(r"10\.244\.0\.\d+", "<pod ip>", text)


def _run_scenario(cluster: Kube, ns: str) -> Observed:
    cluster.apply(namespace_manifest(ns))
    cluster.apply(*(_nad(n, c) for n, c in NADS.items()), namespace=ns)
    cluster.apply(*(pod_manifest(p, nets) for p, nets in PODS.items()),
                  pod_manifest("missing", MISSING), namespace=ns)
    cluster.wait_running(ns, *PODS)
    wait_until(lambda: any(e["reason"] == "NoNetworkFound"
                           for e in cluster.events(ns, "missing")), 60,
               f"NoNetworkFound in {ns}")
    status = {p: _normal_status(cluster.network_status(ns, p), ns) for p in PODS}
    events = {}
    for pod in (*PODS, "missing"):
        events[pod] = sorted(
            {(e["type"], e["reason"], _normal_message(e["message"], ns))
             for e in cluster.events(ns, pod)
             if e["reason"] in ("AddedInterface", "NoNetworkFound")})
    cluster.run("delete", "namespace", ns, "--wait=true", timeout=180)
    # the kubelet stops sandboxes (CNI DEL) after the pod objects are gone: the meta
    # plugin that added them must still be there to delete them before any swap
    bridges = [Path(f"/sys/class/net/{c['bridge']}/brif") for c in NADS.values()]
    wait_until(lambda: not any(b.exists() and any(b.iterdir()) for b in bridges), 90,
               f"CNI DEL of the pods of {ns}")
    return Observed(status, events)


@dataclass
class Runs:
    ours: Observed
    theirs: Observed
    # multihome swapped in for Multus with Multus' own daemon config and 00-multus.conf
    swapped: Observed
    multus_conf: str  # the 00-multus.conf Multus wrote
    swapped_conf: str  # the one multihome wrote from Multus' daemon config


@pytest.fixture(scope="module")
def runs(cluster: Kube, lab_state: str) -> Iterator[Runs]:
    ours = _run_scenario(cluster, "sbs-multihome")
    conf = Path(lab_state, "cluster", "cni", "net.d", "00-multus.conf")
    up.use_cni(lab_state, "multus", lambda _: None)
    try:
        theirs = _run_scenario(cluster, "sbs-multus")
        multus_conf = conf.read_text()
        up.use_cni(lab_state, "multihome-on-multus-config", lambda _: None)
        swapped_conf = conf.read_text()
        swapped = _run_scenario(cluster, "sbs-swapped")
    finally:
        up.use_cni(lab_state, "multihome", lambda _: None)
    yield Runs(ours, theirs, swapped, multus_conf, swapped_conf)
    with netns.iproute_in(None) as ipr:  # the bridges the NADs' plugin made
        for config in NADS.values():
            links.delete_by_name(ipr, str(config["bridge"]))


@pytest.fixture(scope="module")
def both(runs: Runs) -> tuple[Observed, Observed]:
    return runs.ours, runs.theirs


def test_network_status_matches_multus_field_for_field(
        both: tuple[Observed, Observed]) -> None:
    ours, theirs = both
    for pod in PODS:
        assert ours.status[pod] == theirs.status[pod], pod


def test_events_match_multus(both: tuple[Observed, Observed]) -> None:
    ours, theirs = both
    for pod in (*PODS, "missing"):
        assert ours.events[pod] == theirs.events[pod], pod


def test_multihome_takes_multus_own_config_unchanged(runs: Runs) -> None:
    # the same file Multus generated, written back by multihome from Multus' daemon config
    assert json.loads(runs.swapped_conf) == json.loads(runs.multus_conf)
    assert json.loads(runs.multus_conf)["type"] == "multus-shim"
    for pod in PODS:  # and the pods get what they got from Multus
        assert runs.swapped.status[pod] == runs.theirs.status[pod], pod
    for pod in (*PODS, "missing"):
        assert runs.swapped.events[pod] == runs.theirs.events[pod], pod
