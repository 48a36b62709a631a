"""Parallel load: plugins racing on one bridge and range, and pods through the daemon.

Every ADD races the others to create the bridge, the nft base chain and the next free IP;
all must succeed with distinct addresses, and the parallel DELs must leave nothing.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from support import kstate
from support.cni_exec import CNIOutcome, run_cni
from support.daemon_world import NOTHING, Node
from support.netns import Netns, unique

pytestmark = [pytest.mark.netns, pytest.mark.stress]

PARALLEL = 32
BRIDGE = "mhstress0"


def test_parallel_add_then_parallel_del(cni_bin_dir: Path, host_ns: Netns,
                                        netns_factory: Any, tmp_path: Path) -> None:
    conf = {"cniVersion": "1.0.0", "name": "stress", "type": "bridge", "bridge": BRIDGE,
            "isGateway": True, "macspoofchk": True,
            "ipam": {"type": "host-local", "dataDir": str(tmp_path),
                     "ranges": [[{"subnet": "10.213.0.0/24"}]]}}
    pods: list[tuple[str, Netns]] = [(unique("st"), netns_factory("mhs"))
                                     for _ in range(PARALLEL)]

    def call(command: str, cid: str, ns: Netns) -> Any:
        return run_cni(cni_bin_dir / "bridge", command, conf, container_id=cid,
                       netns=ns.path, ifname="eth0", cni_path=cni_bin_dir, host_ns=host_ns)

    with ThreadPoolExecutor(PARALLEL) as pool:
        added = list(pool.map(lambda p: call("ADD", *p), pods))
    try:
        failures = [o for o in added if o.returncode != 0]
        assert not failures, f"{len(failures)} ADDs failed, first: {failures[0].stdout}"
        ips = [o.json["ips"][0]["address"] for o in added]
        assert len(set(ips)) == PARALLEL
        assert len(kstate.ports_of(host_ns.name, BRIDGE)) == PARALLEL
        chains = [c for c in kstate.nft_chains(host_ns.name) if c.startswith("cni-br-iface-")]
        assert len(chains) == 2 * PARALLEL
        for (_cid, ns), ip in zip(pods, ips, strict=True):
            assert kstate.addresses(ns.name, "eth0") == [ip]
    finally:
        with ThreadPoolExecutor(PARALLEL) as pool:
            deleted = list(pool.map(lambda p: call("DEL", *p), pods))
    failures = [o for o in deleted if o.returncode != 0]
    assert not failures, f"{len(failures)} DELs failed, first: {failures[0].stdout}"

    assert kstate.ports_of(host_ns.name, BRIDGE) == {}
    host_links = kstate.links(host_ns.name)
    assert [n for n in host_links if n.startswith("veth")] == []
    assert [c for c in kstate.nft_chains(host_ns.name) if c.startswith("cni-br-iface-")] == []
    assert [r for r in kstate.nft_rules(host_ns.name)
            if str(r.get("comment", "")).startswith("macspoofchk-")] == []
    left = sorted(p.name for p in (tmp_path / "stress").iterdir())
    assert [n for n in left if n != "lock" and not n.startswith("last_reserved_ip")] == []
    for _cid, ns in pods:
        assert kstate.link(ns.name, "eth0") is None

    host_ns.run("ip", "link", "del", BRIDGE)
    assert kstate.link(host_ns.name, BRIDGE) is None


PODS = 64
BUSY_RETRIES = 500  # a runtime retries an ADD refused with code 11; ours gives up here


def test_64_pods_through_the_daemon_and_del_is_never_refused(node: Node,
                                                             netns_factory: Any) -> None:
    """64 pods ADD in parallel through a small daemon (busy ADDs are retried, as a runtime
    does); then, with every setup slot taken by held ADDs, 64 parallel DELs and a GC all
    succeed at the first try, and nothing is left."""
    node.write_default(hold=True, subnet="10.62.0.0/23")
    node.start("--workers", "2", "--queue", "4")
    pods: list[tuple[str, Netns]] = [(unique("sp"), netns_factory("mhp")) for _ in range(PODS)]

    def add(cid: str, ns: Netns) -> CNIOutcome:
        for _ in range(BUSY_RETRIES):
            out = node.cni("ADD", cid, ns)
            if out.returncode == 0 or out.json.get("code") != 11:
                return out
        return out

    held: list[tuple[str, Netns]] = [(f"held{i}", netns_factory("mhp")) for i in range(6)]
    background: list[Any] = []
    try:
        with ThreadPoolExecutor(PODS) as pool:
            added = list(pool.map(lambda p: add(*p), pods))
        failures = [o for o in added if o.returncode != 0]
        assert not failures, f"{len(failures)} ADDs failed, first: {failures[0].stdout}"
        assert len({o.json["ips"][0]["address"] for o in added}) == PODS

        node.hold()  # the next ADDs stop in mh-hold: 2 run, 4 queue, the setup lane is full
        background = [node.cni_background("ADD", cid, ns) for cid, ns in held]
        deadline = time.monotonic() + 60
        while "multihome_cni_requests_in_flight 6\n" not in (node.get("/metrics")
                                                              or b"").decode():
            assert time.monotonic() < deadline, "the held ADDs never filled the setup lane"
            time.sleep(0.1)
        busy = node.cni("ADD", unique("sp"), pods[0][1])
        assert busy.returncode == 1 and busy.json["code"] == 11  # full indeed

        with ThreadPoolExecutor(PODS) as pool:
            deleted = list(pool.map(lambda p: node.cni("DEL", *p), pods))
        failures = [o for o in deleted if o.returncode != 0]
        assert not failures, f"{len(failures)} DELs failed, first: {failures[0].stdout}"
        gc_conf = {**node.plugin_conf(), "cniVersion": "1.1.0",
                   "cni.dev/valid-attachments": [{"containerID": cid, "ifname": "eth0"}
                                                 for cid, _ in held]}
        run_cni(node.installed / "multihome", "GC", gc_conf, host_ns=node.ns, ifname="",
                cni_path=f"{node.extra_bin}:{node.installed}").ok()
        for _cid, ns in pods:
            assert kstate.link(ns.name, "eth0") is None
    finally:
        node.release()
        for proc in background:
            proc.communicate(timeout=120)
        for cid, ns in held:
            node.cni("DEL", cid, ns).ok()
    for _cid, ns in pods:
        assert node.leftovers(ns) == NOTHING
    metrics = (node.get("/metrics") or b"").decode()
    assert 'command="DEL",type="multihome",result="busy"' not in metrics
