"""The cluster-wide IPAM (type whereabouts): 4 simulated nodes allocating 500 pods at once.

Each node is its own process with its own store connection and node name, calling the
plugin through the skel (as the daemon runs it in-process, without the interface work).
Backends: the SQLite store (one file, as the lab shares it), and the Kubernetes API store
against the fixture API server of tests/support (one Python process; `--kubeconfig` runs
it against a real API server instead, e.g. the lab cluster's, under its lock). Each with
one shared pool and with node slices (`node_slice_size`). Reports p50/p99 ADD latency,
throughput, and duplicates (must be 0), then releases everything. Writes the table to
bench/RESULTS.md unless --no-write.

    .venv/bin/python bench/bench_ipam.py [--pods 500] [--nodes 4] [--kubeconfig FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from multihome.cni import skel
from multihome.ipam import whereabouts
from multihome.k8s.client import ApiClient, Credentials, credentials_from_kubeconfig
from multihome.k8s.store import KubeStore
from multihome.store.objects import IPPOOL, NODE_SLICE_POOL, OVERLAPPING_RESERVATION
from multihome.store.pools import ObjectPools, PoolStore
from multihome.store.sqlite import SQLiteStore
from support.fake_apiserver import FakeApiServer

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Cluster-wide IPAM benchmark"
RANGE = "10.200.0.0/21"  # 2046 addresses; slices of /24 hold a node's share
SLICE = "/24"

Spec = tuple[str, str]  # ("sqlite", path) | ("api", url) | ("kubeconfig", path)


def open_pools(spec: Spec, node: str) -> tuple[PoolStore, Callable[[], None]]:
    kind, where = spec
    if kind == "sqlite":
        sqlite = SQLiteStore(where)
        return ObjectPools(sqlite), sqlite.close
    creds = Credentials(server=where) if kind == "api" else credentials_from_kubeconfig(where)
    kube = KubeStore(ApiClient(creds, timeout_s=10.0), node, watch=False)
    return ObjectPools(kube), kube.shutdown


def call(pools: PoolStore, node: str, local: str, command: str, config: dict[str, Any],
         cid: str) -> tuple[int, Any]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/var/run/netns/x",
           "CNI_IFNAME": "net1", "CNI_PATH": "/usr/lib/cni",
           "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={cid}"}
    with whereabouts.bound(pools, node, local):
        rc, out = skel.dispatch(whereabouts, env, json.dumps(config).encode())
    return rc, json.loads(out) if out else None


def node_worker(job: tuple[Spec, str, str, str, dict[str, Any], list[str]],
                ) -> list[tuple[str, int, str, float]]:
    """(containerID, rc, address or error, seconds) of one node's calls in sequence."""
    spec, node, local, command, config, cids = job
    pools, close = open_pools(spec, node)
    out = []
    try:
        for cid in cids:
            start = time.perf_counter()
            rc, res = call(pools, node, local, command, config, cid)
            elapsed = time.perf_counter() - start
            text = res["ips"][0]["address"] if rc == 0 and res else (res or {}).get("msg", "")
            out.append((cid, rc, str(text), elapsed))
    finally:
        close()
    return out


def run_nodes(spec: Spec, local_dir: str, command: str, config: dict[str, Any],
              per_node: dict[str, list[str]]) -> tuple[list[tuple[str, int, str, float]], float]:
    jobs = [(spec, node, f"{local_dir}/{node}.db" if local_dir else "", command, config, cids)
            for node, cids in per_node.items()]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
        results = pool.map(node_worker, jobs)
    return [r for rs in results for r in rs], time.perf_counter() - start


@dataclass
class Row:
    backend: str
    slices: bool
    pods: int
    failures: int
    duplicates: int
    p50_ms: float
    p99_ms: float
    per_s: float
    del_s: float


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def measure(backend: str, spec: Spec, slices: bool, pods: int, nodes: int,
            tmp: str, tag: str) -> Row:
    extra = {"node_slice_size": SLICE} if slices else {}
    config = {"cniVersion": "1.0.0", "name": "bench", "type": "bridge",
              "ipam": {"type": "whereabouts", "range": RANGE, "network_name": tag,
                       "exclude": [RANGE.replace("0/21", "0/30")], **extra}}
    per_node = {f"node-{n}": [f"{tag}-n{n}-p{i}" for i in range(pods // nodes)]
                for n in range(nodes)}
    # node-local slice pools only when the pools themselves are remote (as the daemon does)
    local_dir = tmp if slices and spec[0] != "sqlite" else ""
    calls, wall = run_nodes(spec, local_dir, "ADD", config, per_node)
    ok = [c for c in calls if c[1] == 0]
    addrs = [c[2] for c in ok]
    _, del_wall = run_nodes(spec, local_dir, "DEL", config, per_node)
    cleanup(spec, tag)
    return Row(backend, slices, len(calls), len(calls) - len(ok),
               len(addrs) - len(set(addrs)),
               statistics.median(c[3] for c in ok) * 1000 if ok else 0.0,
               pct([c[3] for c in ok], 0.99) if ok else 0.0,
               len(ok) / wall, del_wall)


def cleanup(spec: Spec, tag: str) -> None:
    pools, close = open_pools(spec, "bench")
    try:
        for kind in (IPPOOL, OVERLAPPING_RESERVATION, NODE_SLICE_POOL):
            for doc in pools.list(kind):
                if doc.name.startswith(f"{tag}-") or doc.name == tag:
                    pools.remove(kind, doc.name)
    finally:
        close()


@contextmanager
def api_spec(kubeconfig: str | None) -> Iterator[tuple[str, Spec]]:
    if kubeconfig:
        yield "Kubernetes API (real kube-apiserver)", ("kubeconfig", kubeconfig)
        return
    server = FakeApiServer().start()
    try:
        yield "Kubernetes API store (fixture API server)", ("api", server.url)
    finally:
        server.stop()


def render(rows: list[Row], pods: int, nodes: int) -> str:
    lines = [
        SECTION, "",
        f"`bench/bench_ipam.py` on {datetime.date.today()}, {platform.node()}: {nodes} "
        f"simulated nodes (processes) allocating {pods} pods at once from {RANGE}, "
        "through the skel; latency is one ADD (read, reservation, version-guarded "
        "write, retries included).", "",
        "| backend | node slices | pods | failed | duplicates | ADD p50 ms | ADD p99 ms "
        "| ADDs/s | DEL all s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r.backend} | {'yes' if r.slices else 'no'} | {r.pods} | {r.failures} | "
              f"{r.duplicates} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.per_s:.0f} | "
              f"{r.del_s:.1f} |" for r in rows]
    return "\n".join(lines) + "\n"


def write(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    head, found, rest = old.partition(SECTION)
    tail = ""
    if found:
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1:] if nxt >= 0 else ""
    RESULTS.write_text(head.rstrip("\n") + "\n\n" + text + ("\n" + tail if tail else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--kubeconfig", default=None,
                        help="a real API server's kubeconfig (default: the fixture server)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="mh-bench-ipam-") as tmp:
        for slices in (False, True):
            db = f"{tmp}/pools-{int(slices)}.db"
            SQLiteStore(db).close()
            rows.append(measure("SQLite store", ("sqlite", db), slices, args.pods,
                                args.nodes, tmp, f"b{int(slices)}"))
        with api_spec(args.kubeconfig) as (label, spec):
            for slices in (False, True):
                rows.append(measure(label, spec, slices, args.pods, args.nodes, tmp,
                                    f"k{int(slices)}"))
    text = render(rows, args.pods, args.nodes)
    print(text)
    if not args.no_write:
        write(text)
    return 1 if any(r.duplicates or r.failures for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
