"""32 attachments added and deleted in parallel on one bridge and one host-local range.

Every ADD races the others to create the bridge, the nft base chain and the next free IP;
all must succeed with distinct addresses, and the parallel DELs must leave nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from support import kstate
from support.cni_exec import run_cni
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
