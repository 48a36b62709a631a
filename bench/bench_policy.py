"""MultiNetworkPolicy rule programming: 100 pods x 10 policies on a bridge network.

Runs as root. A throw-away namespace plays the node (this thread switches into it, so
every table lands there and nothing touches the machine's own rules); each pod is a
namespace with a veth on the node's bridge, a Pod in a private SQLite store (labels,
network-status) and an engine record, as the lab would leave them. Prints:

- the first programming of every port (100 tables from nothing),
- a pass with nothing changed (what every later event costs when it moves no rule),
- one more pod's ADD: the pass over its own port alone (written first: what the ADD
  waits for), then the pass over every port (peers whose rules name the new address;
  the daemon runs it off the ADD path, on the pod watch),
- what the engine's DEL adds (removing the container's tables).

    .venv/bin/python bench/bench_policy.py [--pods 100] [--policies 10] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from multihome.attach.engine import PodRecord
from multihome.attach.plan import Attachment, PodRef
from multihome.attach.policy import cleanup, enforce
from multihome.cni import cache
from multihome.net import links, netns
from multihome.store import MULTI_POLICY, POD, Object
from multihome.store.sqlite import SQLiteStore

NS = "bench"
NETWORK = f"{NS}/br-net"
BRIDGE = "mhbpbr0"
TEAMS = 10


def _ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


class Node:
    def __init__(self, tmp: Path) -> None:
        self.tag = secrets.token_hex(3)
        self.node = netns.create_named(f"mhbpn{self.tag}")
        self.store = SQLiteStore(str(tmp / "store.db"))
        self.cni_dir = str(tmp / "cni")
        self.records: list[PodRecord] = []
        self.pod_netns: list[str] = []
        with netns.iproute_in(self.node) as ipr:
            links.ensure_bridge(ipr, BRIDGE)

    def add_pod(self, i: int) -> PodRecord:
        name = f"p{i}"
        path = netns.create_named(f"mhbp{self.tag}-{i}")
        self.pod_netns.append(path)
        mac = f"02:00:00:00:{i // 256:02x}:{i % 256:02x}"
        with netns.iproute_in(self.node) as ipr, netns.opened(path) as fd:
            host, veth = links.create_veth(ipr, "net1", fd, mac=mac)
            bridge = links.by_name(ipr, BRIDGE)
            assert bridge is not None
            links.set_master(ipr, host.index, bridge.index, up=True)
        status = [{"name": NETWORK, "interface": "net1", "mac": mac,
                   "ips": [f"10.180.{i // 250}.{i % 250 + 2}"]}]
        self.store.apply(Object.from_manifest({
            "apiVersion": "v1", "kind": POD,
            "metadata": {"name": name, "namespace": NS, "labels": {"team": f"t{i % TEAMS}"},
                         "annotations": {"k8s.v1.cni.cncf.io/network-status": json.dumps(
                             status)}},
            "spec": {"containers": [{"name": "c", "ports": [
                {"name": "db", "containerPort": 5432}]}]}}))
        conflist = {"cniVersion": "1.0.0", "name": "br-net",
                    "plugins": [{"type": "bridge", "bridge": BRIDGE}]}
        record = PodRecord(f"bench{self.tag}{i}", path, "eth0", PodRef(NS, name), [],
                           [Attachment(NETWORK, "net1", conflist)])
        # the bridge plugin's result, as the engine caches it (names the node's veth)
        cache.save(self.cni_dir, cache.CacheEntry("br-net", record.container_id, "net1",
                                                  json.dumps(conflist).encode(), {
            "cniVersion": "1.0.0", "interfaces": [
                {"name": BRIDGE}, {"name": veth}, {"name": "net1", "sandbox": path}]}))
        self.records.append(record)
        return record

    def add_policy(self, k: int, wide_egress: bool) -> None:
        # egress to one other team, or (worst case) to every pod of every namespace: then
        # every port's table holds every address and every new pod changes every table
        to = ({"namespaceSelector": {}} if wide_egress
              else {"podSelector": {"matchLabels": {"team": f"t{(k + 2) % TEAMS}"}}})
        self.store.apply(Object.from_manifest({
            "apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": MULTI_POLICY,
            "metadata": {"name": f"pol{k}", "namespace": NS,
                         "annotations": {"k8s.v1.cni.cncf.io/policy-for": "br-net"}},
            "spec": {
                "podSelector": {"matchLabels": {"team": f"t{k % TEAMS}"}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {
                    "team": f"t{(k + 1) % TEAMS}"}}}],
                    "ports": [{"port": "db"}, {"port": 8000, "endPort": 8100}]},
                    {"from": [{"ipBlock": {"cidr": "10.180.0.0/16",
                                           "except": ["10.180.3.0/24"]}}],
                     "ports": [{"protocol": "UDP", "port": 53}]}],
                "egress": [{"to": [to]}]}}))

    def sync(self, only: PodRecord | None = None) -> enforce.SyncReport:
        with netns.entered(self.node):
            report = enforce.sync(self.store, [only] if only else self.records, self.cni_dir)
        assert not report.errors, report.errors
        return report

    def close(self) -> None:
        self.store.close()
        for path in self.pod_netns:
            netns.delete_named(path)
        netns.delete_named(self.node)  # its bridge, veths and tables go with it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--policies", type=int, default=10)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--wide-egress", action="store_true",
                        help="every policy allows egress to every pod (the worst case)")
    args = parser.parse_args()
    full, noop, own, add, delete = [], [], [], [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            node = Node(Path(tmp))
            try:
                for i in range(args.pods):
                    node.add_pod(i)
                for k in range(args.policies):
                    node.add_policy(k, args.wide_egress)
                start = time.perf_counter()
                report = node.sync()
                full.append((time.perf_counter() - start) * 1000)
                assert len(report.programmed) == args.pods, report.programmed
                noop.append(_ms(node.sync))
                extra = node.add_pod(args.pods + run)
                own.append(_ms(partial(node.sync, extra)))
                add.append(_ms(node.sync))
                with netns.entered(node.node):
                    delete.append(_ms(partial(cleanup.forget, extra.container_id)))
            finally:
                node.close()
    med = statistics.median
    print(f"MultiNetworkPolicy, {args.pods} pods x {args.policies} policies on one bridge "
          f"network{' (egress to every pod)' if args.wide_egress else ''}, median of "
          f"{args.runs} runs (ms):")
    print(f"  program every port from nothing: {med(full):8.1f}  "
          f"({med(full) / args.pods:.2f} per port)")
    print(f"  pass with nothing changed:       {med(noop):8.1f}")
    print(f"  one more pod: its own port:      {med(own):8.1f}  (what ADD waits for when "
          "the pod's rules are written first)")
    print(f"  one more pod: then every port:   {med(add):8.1f}  (peers' rules; the daemon "
          "does it off the ADD path, on the pod watch)")
    print(f"  engine DEL, the pod's tables:    {med(delete):8.2f}")


if __name__ == "__main__":
    main()
