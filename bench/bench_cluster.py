"""Pods on a real cluster: multihome against Multus thick, on the same cluster, same NADs.

Runs as root. Starts the lab cluster (`multihome lab up --kubernetes`) in a temporary
state dir and removes it at the end, even on failure; the Go binaries come from the
per-machine cache (`make cluster-bins`). Multus thick (daemon + shim, built from its Go
module at its release tag) delegates to the Go reference plugins; multihome runs its
plugins in its daemon. The two swap places with `multihome lab cni` between rounds, so
every comparison is interleaved in one run. Writes the tables to bench/RESULTS.md.

    .venv/bin/python bench/bench_cluster.py [--runs 20] [--burst 50] [--no-write]

1. pod create -> Running for a pod with 1 and with 3 secondary networks (medians, ratio)
2. a burst of N pods with 3 secondary networks each: time until all run, failures
3. the node daemon's resident memory after the burst (multihome daemon vs multus-daemon)

"Running" is read from the API (polled every 50 ms); create is a POST of the pod.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from results import RESULTS, write_section

from multihome.lab.cluster import layout as cluster_layout
from multihome.lab.cluster import procs, up
from multihome.lab.cluster.images import TEST_IMAGE
from multihome.lab.cluster.layout import ClusterLayout
from multihome.net import links, netns

SECTION = "## Cluster benchmarks"
NS = "mh-bench"
NETWORKS = ("bench-a", "bench-b", "bench-c")
POLL_S = 0.05
RUNNING_TIMEOUT_S = 120.0
CNIS = ("multihome", "multus")


class Api:
    """The API server with the lab's admin certificate: no kubectl start in a timing."""

    def __init__(self, layout: ClusterLayout) -> None:
        self.base = layout.api_url
        self.ctx = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
        self.ctx.load_cert_chain(str(layout.pki / "admin.crt"), str(layout.pki / "admin.key"))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def pod(self, name: str) -> dict[str, Any] | None:
        obj: dict[str, Any] | None = self.call("GET", f"/api/v1/namespaces/{NS}/pods/{name}")
        return obj


def pod_body(name: str, networks: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": {
            "k8s.v1.cni.cncf.io/networks": ",".join(NETWORKS[:networks])}},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
            "name": "main", "image": TEST_IMAGE, "imagePullPolicy": "Never",
            "command": ["sleep", "3600"]}]},
    }


def nad_body(name: str, data_dir: str, index: int) -> dict[str, Any]:
    config = {"cniVersion": "0.3.1", "name": name, "type": "bridge",
              "bridge": f"mh-bench{index}",
              "ipam": {"type": "host-local", "dataDir": data_dir,
                       "ranges": [[{"subnet": f"10.252.{index}.0/24"}]]}}
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name}, "spec": {"config": json.dumps(config)}}


def running(pod: dict[str, Any] | None) -> bool:
    return bool(pod and pod.get("status", {}).get("phase") == "Running")


def attached(pod: dict[str, Any] | None, networks: int) -> bool:
    """Running with the secondary networks asked for (not a pod that got eth0 only)."""
    text = ((pod or {}).get("metadata", {}).get("annotations", {})
            .get("k8s.v1.cni.cncf.io/network-status", "[]"))
    return len(json.loads(text)) == 1 + networks


@dataclass
class Bench:
    state: str
    layout: ClusterLayout
    api: Api
    lines: list[str] = field(default_factory=list)
    counter: int = 0

    def out(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def use(self, cni: str) -> None:
        """Swap the CNI, then run one pod through it unmeasured: the first pod after a
        swap measured the freshly started daemon (multihome's ~1 s of imports and
        informers, Multus' much less), not pod start-up; both sides get the warm-up."""
        up.use_cni(self.state, cni, lambda _: None)
        time.sleep(1.0)  # containerd reloads its CNI config on the file event
        self.create_and_wait(1)
        self.delete_all()

    def create_and_wait(self, networks: int) -> tuple[float, bool]:
        self.counter += 1
        name = f"p{self.counter}"
        start = time.perf_counter()
        self.api.call("POST", f"/api/v1/namespaces/{NS}/pods", pod_body(name, networks))
        deadline = start + RUNNING_TIMEOUT_S
        pod = None
        while time.perf_counter() < deadline:
            pod = self.api.pod(name)
            if running(pod):
                break
            time.sleep(POLL_S)
        took = time.perf_counter() - start
        return took, running(pod) and attached(pod, networks)

    def delete_all(self) -> None:
        """Delete the namespace's pods and wait until their sandboxes are gone too.

        No grace period: the test image's PID 1 ignores SIGTERM, so each round waited
        30 s for the kubelet's SIGKILL, which measured nothing."""
        self.api.call("DELETE", f"/api/v1/namespaces/{NS}/pods?gracePeriodSeconds=0")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            pods = self.api.call("GET", f"/api/v1/namespaces/{NS}/pods")["items"]
            ports = sum(len(list(Path(f"/sys/class/net/mh-bench{i}/brif").iterdir()))
                        for i in range(len(NETWORKS))
                        if Path(f"/sys/class/net/mh-bench{i}").exists())
            if not pods and ports == 0:
                return
            time.sleep(0.5)
        raise RuntimeError("pods of the benchmark were not torn down within 180 s")

    def latency(self, runs: int) -> None:
        times: dict[tuple[str, int], list[float]] = {(c, n): [] for c in CNIS for n in (1, 3)}
        failures = dict.fromkeys(times, 0)
        for r in range(runs):
            order = CNIS if r % 2 == 0 else tuple(reversed(CNIS))
            for cni in order:
                self.use(cni)
                for n in (1, 3):
                    took, ok = self.create_and_wait(n)
                    if ok:
                        times[(cni, n)].append(took)
                    else:
                        failures[(cni, n)] += 1
                self.delete_all()
            print(f"  round {r + 1}/{runs} done", flush=True)
        self.out("### 1. Pod create -> Running (median of interleaved runs)")
        self.out()
        self.out("| pod | multihome | Multus thick | ratio | failures (mh / Multus) |")
        self.out("|---|---|---|---|---|")
        for n in (1, 3):
            ours, theirs = times[("multihome", n)], times[("multus", n)]
            m_ours = statistics.median(ours) if ours else float("nan")
            m_theirs = statistics.median(theirs) if theirs else float("nan")
            self.out(f"| eth0 + {n} secondary | {m_ours * 1000:.0f} ms | "
                     f"{m_theirs * 1000:.0f} ms | {m_ours / m_theirs:.2f}x | "
                     f"{failures[('multihome', n)]} / {failures[('multus', n)]} |")
        self.out()

    def burst(self, count: int) -> None:
        self.out(f"### 2. A burst of {count} pods (eth0 + 3 secondary networks each)")
        self.out()
        self.out("| CNI | all Running after | failures | node daemon RSS after |")
        self.out("|---|---|---|---|")
        for cni in CNIS:
            self.use(cni)
            names = []
            start = time.perf_counter()
            for _ in range(count):
                self.counter += 1
                names.append(f"p{self.counter}")
                self.api.call("POST", f"/api/v1/namespaces/{NS}/pods",
                              pod_body(names[-1], 3))
            pending = set(names)
            deadline = start + 300
            while pending and time.perf_counter() < deadline:
                for name in list(pending):
                    pod = self.api.pod(name)
                    if running(pod) and attached(pod, 3):
                        pending.discard(name)
                time.sleep(0.2)
            took = time.perf_counter() - start
            rss = daemon_rss_mib(self.layout, "multihome-daemon" if cni == "multihome"
                                 else "multus-daemon")
            self.out(f"| {cni} | {took:.1f} s | {len(pending)} | {rss:.1f} MiB |")
            self.delete_all()
        self.out()
        self.out("RSS: VmRSS of the node daemon's process from /proc after the burst "
                 "(multihome's daemon is one process; Multus' daemon is one process, its "
                 "delegates are short-lived Go executables not counted).")
        self.out()


def daemon_rss_mib(layout: ClusterLayout, component: str) -> float:
    pid = procs.pid_of(layout, component)
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def lab_cluster() -> Iterator[tuple[str, ClusterLayout]]:
    state = tempfile.mkdtemp(prefix="mh-bench-cluster-")
    os.chmod(state, 0o700)
    cli = str(Path(sys.executable).parent / "multihome")
    env = dict(os.environ, MULTIHOME_STATE_DIR=state)
    try:
        subprocess.run([cli, "lab", "up", "--kubernetes"], env=env, check=True,
                       timeout=1800)
        layout = cluster_layout.load(state)
        assert layout is not None
        yield state, layout
    finally:
        subprocess.run([cli, "lab", "down"], env=env, check=False, timeout=600)
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_cluster.py must run as root (it starts a kubelet and containerd)")
    with lab_cluster() as (state, layout):
        api = Api(layout)
        bench = Bench(state, layout, api)
        api.call("POST", "/api/v1/namespaces",
                 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        data_dir = os.path.join(state, "bench-ipam")
        for i, name in enumerate(NETWORKS):
            api.call("POST", f"/apis/k8s.cni.cncf.io/v1/namespaces/{NS}/"
                     "network-attachment-definitions", nad_body(name, data_dir, i))
        bench.out(SECTION)
        bench.out()
        bench.out(f"{datetime.date.today()}, {platform.node()}, {os.cpu_count()} cores, "
                  f"Kubernetes {layout.version}, containerd from Debian, "
                  f"{args.runs} interleaved runs, burst of {args.burst}. "
                  "`.venv/bin/python bench/bench_cluster.py`")
        bench.out()
        try:
            bench.latency(args.runs)
            bench.burst(args.burst)
        finally:
            up.use_cni(state, "multihome", lambda _: None)
            bench.delete_all()
            with netns.iproute_in(None) as ipr:  # the NADs' bridges
                for i in range(len(NETWORKS)):
                    links.delete_by_name(ipr, f"mh-bench{i}")
    if not args.no_write:
        write_section(SECTION, bench.lines)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
