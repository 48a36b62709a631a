"""multihome's daemon + shim against Multus-style execution of the Go reference plugins.

Runs as root. Everything happens inside a throw-away namespace that plays the node (this
process switches into it before starting the daemon and exec'ing any plugin), with its own
bridges, subnets, store and data dirs in a temporary directory; all of it is removed at
the end, even on failure. Each comparison interleaves both sides in the same run; every
figure is a median. Writes the tables to bench/RESULTS.md.

    .venv/bin/python bench/bench_daemon.py [--runs 15] [--pods 200] [--no-write]

1. one bridge attachment (host-local, macspoofchk) ADD+DEL: shim→daemon vs Go bridge
2. a pod with eth0+net1+net2: `multihome` shim→daemon vs three Go bridge execs
3. 1, 2, 4, 8 secondary networks: cost per added network
4. 200 pods one after another and 8 at a time: throughput, p50/p99 ADD, daemon RSS
5. the floor: the netlink + nftables work of one attachment alone, in a warm process
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

GO_DIR = Path("/usr/lib/cni")
RESULTS = Path(__file__).with_name("RESULTS.md")
SECONDARY_COUNTS = (1, 2, 4, 8)
POD_NAMESPACE = "bench"
SECTION = "## Daemon benchmarks"


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def run_exe(exe: Path, env: dict[str, str], conf: dict[str, Any] | None) -> float:
    stdin = json.dumps(conf).encode() if conf is not None else b""
    start = time.perf_counter()
    proc = subprocess.run([str(exe)], input=stdin, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{exe} {env.get('CNI_COMMAND')} failed: {proc.stdout.decode()} "
                         f"{proc.stderr.decode()}")
    return elapsed


def cni_env(command: str, cid: str, netns: str, ifname: str, cni_path: Path | str,
            args: str = "", **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
           "CNI_IFNAME": ifname, "CNI_PATH": str(cni_path), **extra}
    if args:
        env["CNI_ARGS"] = args
    return env


def bridge_conf(name: str, bridge: str, subnet: str, data_dir: Path,
                version: str = "1.0.0") -> dict[str, Any]:
    return {"cniVersion": version, "name": name, "type": "bridge", "bridge": bridge,
            "isGateway": True, "macspoofchk": True,
            "ipam": {"type": "host-local", "dataDir": str(data_dir),
                     "ranges": [[{"subnet": subnet}]]}}


@dataclass
class Bench:
    tmp: Path
    node_ns: str
    runs: int
    pods: int
    made_ns: list[str] = field(default_factory=list)
    daemon: subprocess.Popen[bytes] | None = None
    lines: list[str] = field(default_factory=list)
    counter: int = 0

    @property
    def bin_dir(self) -> Path:
        return self.tmp / "bin"

    @property
    def socket(self) -> str:
        return str(self.tmp / "run" / "mh.sock")

    def cid(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def netns(self, prefix: str) -> str:
        from pyroute2 import netns

        name = f"{prefix}{os.urandom(3).hex()}"
        netns.create(name)
        self.made_ns.append(name)
        return f"/var/run/netns/{name}"

    def out(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    # -- set-up ------------------------------------------------------------

    def setup(self) -> None:
        subprocess.run([sys.executable, "-c", "from multihome.cli.main import main; main()",
                        "install-cni", "--bin-dir", str(self.bin_dir)], check=True,
                       capture_output=True)
        conf_dir = self.tmp / "net.d"
        conf_dir.mkdir()
        default = bridge_conf("cluster", "mhbdef", "10.215.0.0/22", self.tmp / "ipam-ours")
        (conf_dir / "10-cluster.conflist").write_text(json.dumps(
            {"cniVersion": "1.0.0", "name": "cluster", "plugins": [
                {k: v for k, v in default.items() if k not in ("cniVersion", "name")}]}))
        self._store(self.tmp / "store.db")
        self.daemon = subprocess.Popen(
            [sys.executable, "-c", "from multihome.cli.main import main; main()",
             "--store", str(self.tmp / "store.db"), "daemon", "--socket", self.socket,
             "--conf-dir", str(conf_dir), "--bin-dir", str(self.bin_dir),
             "--cni-dir", str(self.tmp / "cache"), "--workers", "4", "--queue", "64",
             "--log-level", "warning"],
            stderr=open(self.tmp / "daemon.log", "wb"), start_new_session=True)  # noqa: SIM115
        deadline = time.monotonic() + 30
        while not os.path.exists(self.socket) or not (conf_dir / "00-multihome.conflist").exists():
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daemon did not start: {(self.tmp / 'daemon.log').read_text()}")
            time.sleep(0.05)
        conflist = json.loads((conf_dir / "00-multihome.conflist").read_text())
        self.engine_conf = {**conflist["plugins"][0], "name": conflist["name"],
                            "cniVersion": conflist["cniVersion"]}

    def _store(self, path: Path) -> None:
        """NADs net-1..net-8 (a bridge each) and pods asking for the first k of them."""
        from multihome.store import NAD, POD, Object
        from multihome.stores import open_store

        store = open_store(str(path))
        try:
            for i in range(1, 9):
                conf = bridge_conf(f"net-{i}", f"mhbo{i}", f"10.216.{i}.0/24",
                                   self.tmp / "ipam-ours")
                store.apply(Object.from_manifest({
                    "apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD,
                    "metadata": {"name": f"net-{i}", "namespace": POD_NAMESPACE},
                    "spec": {"config": json.dumps(conf)}}))
            for k in range(0, 9):
                store.apply(Object.from_manifest({
                    "apiVersion": "v1", "kind": POD,
                    "metadata": {"name": f"pod-{k}", "namespace": POD_NAMESPACE, "annotations": {
                        "k8s.v1.cni.cncf.io/networks": ",".join(
                            f"net-{i}" for i in range(1, k + 1))}}}))
        finally:
            store.close()

    def stop_daemon(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.daemon.pid, signal.SIGKILL)
                self.daemon.wait()

    # -- the two sides ---------------------------------------------------------

    def ours_pod(self, k: int, pod_ns: str, samples: dict[str, list[float]]) -> None:
        """One pod with eth0 + k secondaries through the `multihome` shim."""
        cid = self.cid("o")
        args = f"IgnoreUnknown=1;K8S_POD_NAMESPACE={POD_NAMESPACE};K8S_POD_NAME=pod-{k}"
        env = cni_env("ADD", cid, pod_ns, "eth0", self.bin_dir, args)
        add = run_exe(self.bin_dir / "multihome", env, self.engine_conf)
        delete = run_exe(self.bin_dir / "multihome", {**env, "CNI_COMMAND": "DEL"},
                         self.engine_conf)
        for what, t in (("ADD", add), ("DEL", delete), ("ADD+DEL", add + delete)):
            samples.setdefault(what, []).append(t)

    def go_pod(self, k: int, pod_ns: str, samples: dict[str, list[float]]) -> None:
        """What Multus does: exec each delegate, one after another, then DEL in reverse."""
        cid = self.cid("g")
        confs = [("eth0", bridge_conf("gdef", "mhbgdef", "10.217.0.0/22", self.tmp / "ipam-go"))]
        confs += [(f"net{i}", bridge_conf(f"g-{i}", f"mhbg{i}", f"10.218.{i}.0/24",
                                          self.tmp / "ipam-go")) for i in range(1, k + 1)]
        add = sum(run_exe(GO_DIR / "bridge", cni_env("ADD", cid, pod_ns, ifn, GO_DIR), c)
                  for ifn, c in confs)
        delete = sum(run_exe(GO_DIR / "bridge", cni_env("DEL", cid, pod_ns, ifn, GO_DIR), c)
                     for ifn, c in reversed(confs))
        for what, t in (("ADD", add), ("DEL", delete), ("ADD+DEL", add + delete)):
            samples.setdefault(what, []).append(t)

    def compare(self, ours: Callable[[dict[str, list[float]]], None],
                go: Callable[[dict[str, list[float]]], None],
                ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        o: dict[str, list[float]] = {}
        g: dict[str, list[float]] = {}
        ours({})  # warm both (page cache, first-call imports in the daemon)
        go({})
        for i in range(self.runs):
            for side in ((ours, o), (go, g)) if i % 2 == 0 else ((go, g), (ours, o)):
                side[0](side[1])
        return o, g

    def table(self, title: str, rows: list[tuple[str, float, float]], target: str) -> None:
        self.out(f"### {title}")
        self.out("")
        self.out("| operation | Go plugins ms | multihome ms | ratio | target |")
        self.out("|---|---:|---:|---:|---|")
        # the target is for the first row; the others show where the time goes
        for i, (what, g, o) in enumerate(rows):
            self.out(f"| {what} | {g:.1f} | {o:.1f} | {o / g:.2f}x | {target if i == 0 else ''} |")
        self.out("")

    # -- the benchmarks ----------------------------------------------------------

    def one_attachment(self) -> float:
        pod_o, pod_g = self.netns("mhbpo"), self.netns("mhbpg")
        conf_o = bridge_conf("one-o", "mhb1o", "10.219.1.0/24", self.tmp / "ipam-ours")
        conf_g = bridge_conf("one-g", "mhb1g", "10.219.2.0/24", self.tmp / "ipam-go")
        fast = {"MULTIHOME_SOCKET": self.socket}

        def cycle(exe: Path, conf: dict[str, Any], pod: str, path: Path, extra: dict[str, str],
                  s: dict[str, list[float]]) -> None:
            cid = self.cid("b")
            add = run_exe(exe, cni_env("ADD", cid, pod, "eth0", path, **extra), conf)
            delete = run_exe(exe, cni_env("DEL", cid, pod, "eth0", path, **extra), conf)
            version = run_exe(exe, {"PATH": os.environ["PATH"], "CNI_COMMAND": "VERSION"}, None)
            for what, t in (("ADD", add), ("DEL", delete), ("ADD+DEL", add + delete),
                            ("VERSION", version)):
                s.setdefault(what, []).append(t)

        o, g = self.compare(
            lambda s: cycle(self.bin_dir / "bridge", conf_o, pod_o, self.bin_dir, fast, s),
            lambda s: cycle(GO_DIR / "bridge", conf_g, pod_g, GO_DIR, {}, s))
        # the engine path too: the `multihome` shim with only the default network
        e, g2 = self.compare(lambda s: self.ours_pod(0, pod_o, s),
                             lambda s: self.go_pod(0, pod_g, s))
        rows = [(w, ms(g[w]), ms(o[w])) for w in ("ADD+DEL", "ADD", "DEL", "VERSION")]
        rows.append(("ADD+DEL via `multihome` shim (engine, eth0 only)", ms(g2["ADD+DEL"]),
                     ms(e["ADD+DEL"])))
        self.table("1. One bridge attachment (host-local, macspoofchk): `bridge` shim→daemon "
                   "vs /usr/lib/cni/bridge", rows, "≤ 1.0x")
        return ms(o["ADD+DEL"])

    def three_networks(self) -> None:
        pod_o, pod_g = self.netns("mhbpo"), self.netns("mhbpg")
        o, g = self.compare(lambda s: self.ours_pod(2, pod_o, s),
                            lambda s: self.go_pod(2, pod_g, s))
        self.table("2. Pod with eth0 + net1 + net2: `multihome` shim→daemon vs three Go "
                   "bridge execs in sequence (Multus-style)",
                   [(w, ms(g[w]), ms(o[w])) for w in ("ADD+DEL", "ADD", "DEL")], "≤ 0.5x")

    def scaling(self) -> None:
        pod_o, pod_g = self.netns("mhbpo"), self.netns("mhbpg")
        self.out("### 3. Secondary networks per pod: ADD+DEL and the cost of each added network")
        self.out("")
        self.out("| secondaries | Go ms | multihome ms | ratio | Go ms/added net "
                 "| multihome ms/added net |")
        self.out("|---:|---:|---:|---:|---:|---:|")
        prev: tuple[int, float, float] | None = None
        for k in SECONDARY_COUNTS:
            o, g = self.compare(partial(self.ours_pod, k, pod_o), partial(self.go_pod, k, pod_g))
            go_ms, our_ms = ms(g["ADD+DEL"]), ms(o["ADD+DEL"])
            if prev is None:
                per_go = per_ours = "-"
            else:
                n = k - prev[0]
                per_go = f"{(go_ms - prev[1]) / n:.1f}"
                per_ours = f"{(our_ms - prev[2]) / n:.1f}"
            self.out(f"| {k} | {go_ms:.1f} | {our_ms:.1f} | {our_ms / go_ms:.2f}x "
                     f"| {per_go} | {per_ours} |")
            prev = (k, go_ms, our_ms)
        self.out("")

    def many_pods(self) -> None:
        from multihome.daemon.metrics import resident_bytes

        assert self.daemon is not None
        rss_before = resident_bytes(self.daemon.pid)
        self.out(f"### 4. {self.pods} pods (eth0 + net1 each) through the `multihome` shim")
        self.out("")
        self.out("| mode | pods/s | ADD p50 ms | ADD p99 ms | DEL p50 ms | RSS after MiB |")
        self.out("|---|---:|---:|---:|---:|---:|")
        nss = [self.netns("mhbpc") for _ in range(8)]
        for mode, parallel in (("sequential", 1), ("8 concurrent", 8)):
            samples: list[dict[str, list[float]]] = [{} for _ in range(parallel)]
            per_worker = self.pods // parallel

            def worker(i: int, samples: list[dict[str, list[float]]] = samples,
                       per_worker: int = per_worker) -> None:
                for _ in range(per_worker):
                    self.ours_pod(1, nss[i], samples[i])

            start = time.perf_counter()
            with ThreadPoolExecutor(parallel) as ex:
                list(ex.map(worker, range(parallel)))
            wall = time.perf_counter() - start
            adds = [t for s in samples for t in s["ADD"]]
            dels = [t for s in samples for t in s["DEL"]]
            rss = resident_bytes(self.daemon.pid) / 2**20
            self.out(f"| {mode} | {len(adds) / wall:.1f} | {pct(adds, 0.5):.1f} "
                     f"| {pct(adds, 0.99):.1f} | {pct(dels, 0.5):.1f} | {rss:.1f} |")
        leftovers = list((self.tmp / "cache" / "multihome").glob("*.json"))
        self.out("")
        self.out(f"Daemon RSS before: {rss_before / 2**20:.1f} MiB, after "
                 f"{2 * self.pods} pods: {resident_bytes(self.daemon.pid) / 2**20:.1f} MiB "
                 f"(target ≤ 60 MiB); attachment records left: {len(leftovers)}.")
        self.out("")

    def floor(self, ours_one_ms: float) -> None:
        """Netlink + nftables of one bridge attachment, warm, without any CNI machinery."""
        from pyroute2 import IPRoute

        from multihome.net import nft
        from multihome.net.netns import iproute_in

        pod = self.netns("mhbpf")
        samples: list[float] = []
        table = [{"add": {"table": {"family": "bridge", "name": "mhbfloor"}}}]
        nft.run(table)
        with IPRoute() as host, iproute_in(pod) as inner:
            host.link("add", ifname="mhbfl", kind="bridge")
            br = host.link_lookup(ifname="mhbfl")[0]
            host.link("set", index=br, state="up")
            pod_fd = os.open(pod, os.O_RDONLY)
            try:
                for i in range(self.runs + 1):
                    start = time.perf_counter()
                    host.link("add", ifname="mhbfv", kind="veth", peer={
                        "ifname": "eth0", "net_ns_fd": pod_fd})
                    veth = host.link_lookup(ifname="mhbfv")[0]
                    host.link("set", index=veth, master=br, state="up")
                    eth0 = inner.link_lookup(ifname="eth0")[0]
                    inner.addr("add", index=eth0, address="10.220.0.2", prefixlen=24)
                    inner.link("set", index=eth0, state="up")
                    mac = inner.get_links(eth0)[0].get_attr("IFLA_ADDRESS")
                    chain = {"family": "bridge", "table": "mhbfloor", "name": "c"}
                    nft.run([{"add": {"chain": chain}}, {"add": {"rule": {
                        **{k: chain[k] for k in ("family", "table")}, "chain": "c", "expr": [
                            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}},
                                       "right": "mhbfv"}},
                            {"match": {"op": "!=", "left": {"payload": {
                                "protocol": "ether", "field": "saddr"}}, "right": mac}},
                            {"drop": None}]}}}])
                    nft.run([{"delete": {"chain": chain}}])
                    host.link("del", index=veth)
                    if i:
                        samples.append(time.perf_counter() - start)
            finally:
                os.close(pod_fd)
                host.link("del", index=br)
                nft.run([{"delete": {"table": {"family": "bridge", "name": "mhbfloor"}}}])
        floor = ms(samples)
        self.out("### 5. The floor: kernel work of one attachment alone")
        self.out("")
        self.out("| what | ms |")
        self.out("|---|---:|")
        self.out(f"| netlink (veth into the pod, bridge port, address, up) + nft (macspoof "
                 f"chain and rule, then delete), warm process | {floor:.1f} |")
        self.out(f"| benchmark 1, ADD+DEL through shim→daemon | {ours_one_ms:.1f} |")
        self.out(f"| everything that is not kernel work | {ours_one_ms - floor:.1f} |")
        self.out("")


def machine() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


@contextmanager
def node_namespace() -> Iterator[str]:
    from pyroute2 import netns

    name = f"mhbnode{os.urandom(3).hex()}"
    netns.create(name)
    netns.pushns(name)  # children inherit: bridges, nft rules and the daemon stay inside
    try:
        yield name
    finally:
        netns.popns()
        netns.remove(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--only", type=int, action="append", choices=range(1, 6),
                        help="run only this benchmark (repeatable); implies --no-write")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_daemon.py needs root (namespaces, bridges, nft chains)")
    if not (GO_DIR / "bridge").exists():
        sys.exit("the Go reference plugins are missing: make install adds them")
    from pyroute2 import netns

    from multihome import paths

    tmp = Path(tempfile.mkdtemp(prefix="mh-bench-daemon-"))
    # the node lets configs name the bench's own data dirs (host-local dataDir)
    os.environ[paths.CONFIG_PATH_ROOTS_ENV] = ":".join((*paths.DEFAULT_CONFIG_PATH_ROOTS, str(tmp)))
    bench: Bench | None = None
    try:
        with node_namespace() as node:
            bench = Bench(tmp, node, opts.runs, opts.pods)
            bench.out(f"{SECTION} ({datetime.date.today().isoformat()})")
            bench.out("")
            bench.out(f"Machine: {machine()}. Medians of {opts.runs} interleaved runs; "
                      "`make bench` (`.venv/bin/python bench/bench_daemon.py`).")
            bench.out("")
            try:
                bench.setup()
                wanted = set(opts.only or range(1, 6))
                one = bench.one_attachment() if 1 in wanted else 0.0
                if 2 in wanted:
                    bench.three_networks()
                if 3 in wanted:
                    bench.scaling()
                if 4 in wanted:
                    bench.many_pods()
                if 5 in wanted:
                    bench.floor(one)
            finally:
                bench.stop_daemon()
    finally:
        if bench is not None:
            for name in bench.made_ns:
                if name in netns.listnetns():
                    netns.remove(name)
        shutil.rmtree(tmp, ignore_errors=True)
    if bench is not None and not opts.no_write and not opts.only:
        # other benchmarks may own other sections of the file: replace only ours
        kept = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
        head = kept.partition(SECTION)[0]
        RESULTS.write_text(head.rstrip("\n") + "\n\n" + "\n".join(bench.lines) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
