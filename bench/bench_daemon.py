"""multihome's daemon + shim against the Go reference plugins and the Multus thin plugin.

Runs as root. Everything happens inside a throw-away namespace that plays the node (this
process switches into it before starting the daemon and exec'ing any plugin), with its own
bridges, subnets, store and data dirs in a temporary directory; all of it is removed at
the end, even on failure. Each comparison interleaves all sides in the same run; every
figure is a median. Writes the tables to bench/RESULTS.md.

    .venv/bin/python bench/bench_daemon.py [--runs 15] [--pods 100] [--bursts 3]
                                           [--no-write] [--only N]

The contenders for a pod: multihome (the `multihome` shim and the daemon), the Go bridge
plugin exec'd once per network (what Multus does, without Multus), and Multus thin itself
(`make cluster-bins` builds it into ~/.cache/multihome): without a kubeconfig it runs
exactly the delegates of its config, the first as eth0 and the next as net1, net2, ...,
exec'ing each from its binDir in turn, and DEL in reverse. Its cache (cniDir) and conf dir
are in the temporary directory, so nothing lands under /var/lib/cni.

1. one bridge attachment (host-local, macspoofchk) ADD+DEL: shim→daemon vs Go bridge
2. a pod with eth0+net1+net2: `multihome` shim→daemon vs three Go bridge execs vs Multus
3. 1, 2, 4, 8 secondary networks: cost per added network
4. a burst of 100 pods (eth0 + net1), 8 at a time: multihome vs Multus thin, pods/s,
   ADD p50/p99, failures and "busy" refusals
5. the floor: the netlink + nftables work of one attachment alone, in a warm process
6. the daemon's memory over 5 bursts of 200 pods (RSS and PSS after each)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
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

from procstat import Memory, cpu_seconds, descendants
from results import RESULTS, write_section

from multihome.daemon.memory import TRIM_INTERVAL_S

GO_DIR = Path("/usr/lib/cni")
SECONDARY_COUNTS = (1, 2, 4, 8)
POD_NAMESPACE = "bench"
SECTION = "## Daemon benchmarks"
BENCHMARKS = range(1, 7)
BURST_PARALLEL = 8  # pods set up at a time in a burst, as a kubelet starting many pods
MEMORY_BURSTS = 5
MEMORY_BURST_PODS = 200
EXEC_TIMEOUT_S = 120.0  # one plugin exec; a hung one is a failure, not a hung benchmark
MIB = 2**20

# the contenders, in the order of the tables' columns
GO, MULTUS, OURS = "Go plugins", "Multus thin", "multihome"
TAGS = {GO: "g", MULTUS: "t", OURS: "o"}  # in namespace names and container ids

Samples = dict[str, list[float]]
Side = Callable[[Samples], None]


@dataclass(frozen=True)
class Outcome:
    """One CNI call of a contender: how long it took and, when it failed, why."""

    seconds: float
    error: str = ""  # the CNI error's msg (or what the process printed); "" on success

    @property
    def busy(self) -> bool:
        return "busy" in self.error.lower()


# a contender setting up or tearing down a pod: (command, container id, netns path, k
# secondary networks) -> the outcome
PodCall = Callable[[str, str, str, int], Outcome]


@dataclass(frozen=True)
class Burst:
    """Pods ADDed all at once (so many at a time), then all DELeted."""

    add_wall: float
    adds: list[Outcome]
    del_wall: float
    dels: list[Outcome]
    cpu: float  # seconds of CPU the contender's processes used in it

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in (*self.adds, *self.dels) if o.error]


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def ratio(ours: float, theirs: float | None) -> str:
    return "-" if not theirs else f"{ours / theirs:.2f}x"


def error_text(stdout: bytes, stderr: bytes) -> str:
    """The msg of a CNI error on stdout, else whatever the process printed."""
    try:
        err = json.loads(stdout)
    except ValueError:
        err = None
    if isinstance(err, dict) and "msg" in err:
        details = err.get("details")
        return f"{err['msg']}: {details}" if details else str(err["msg"])
    return (stdout + stderr).decode(errors="replace").strip()


def try_exe(exe: Path, env: dict[str, str], conf: dict[str, Any] | None) -> Outcome:
    stdin = json.dumps(conf).encode() if conf is not None else b""
    start = time.perf_counter()
    try:
        proc = subprocess.run([str(exe)], input=stdin, env=env, capture_output=True,
                              timeout=EXEC_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Outcome(time.perf_counter() - start,
                       f"{exe.name} {env.get('CNI_COMMAND')} timed out after "
                       f"{EXEC_TIMEOUT_S:.0f} s")
    elapsed = time.perf_counter() - start
    if proc.returncode == 0:
        return Outcome(elapsed)
    return Outcome(elapsed, error_text(proc.stdout, proc.stderr) or f"exit {proc.returncode}")


def run_exe(exe: Path, env: dict[str, str], conf: dict[str, Any] | None) -> float:
    outcome = try_exe(exe, env, conf)
    if outcome.error:
        raise SystemExit(f"{exe} {env.get('CNI_COMMAND')} failed: {outcome.error}")
    return outcome.seconds


def cni_env(command: str, cid: str, netns: str, ifname: str, cni_path: Path | str,
            args: str = "", **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
           "CNI_IFNAME": ifname, "CNI_PATH": str(cni_path), **extra}
    if args:
        env["CNI_ARGS"] = args
    return env


def pod_args(k: int) -> str:
    return f"IgnoreUnknown=1;K8S_POD_NAMESPACE={POD_NAMESPACE};K8S_POD_NAME=pod-{k}"


def bridge_conf(name: str, bridge: str, subnet: str, data_dir: Path,
                version: str = "1.0.0") -> dict[str, Any]:
    return {"cniVersion": version, "name": name, "type": "bridge", "bridge": bridge,
            "isGateway": True, "macspoofchk": True,
            "ipam": {"type": "host-local", "dataDir": str(data_dir),
                     "ranges": [[{"subnet": subnet}]]}}


def multus_binary() -> Path | None:
    """The Multus thin plugin `make cluster-bins` built, if it did."""
    from multihome.lab.cluster.build import multus_binaries

    exe = multus_binaries().path("multus")
    return exe if os.access(exe, os.X_OK) else None


@dataclass
class Bench:
    tmp: Path
    node_ns: str
    runs: int
    pods: int
    bursts: int
    multus: Path | None
    made_ns: list[str] = field(default_factory=list)
    pools: dict[str, list[str]] = field(default_factory=dict)
    daemon: subprocess.Popen[bytes] | None = None
    lines: list[str] = field(default_factory=list)
    counter: int = 0

    @property
    def bin_dir(self) -> Path:
        return self.tmp / "bin"

    @property
    def socket(self) -> str:
        return str(self.tmp / "run" / "mh.sock")

    @property
    def multus_cache(self) -> Path:
        return self.tmp / "multus-cache"

    def cid(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def netns(self, prefix: str) -> str:
        from pyroute2 import netns

        name = f"{prefix}{os.urandom(3).hex()}"
        netns.create(name)
        self.made_ns.append(name)
        return f"/var/run/netns/{name}"

    def pod_pool(self, contender: str, n: int) -> list[str]:
        """n pod namespaces of this contender's, made once and reused burst after burst."""
        pool = self.pools.setdefault(contender, [])
        while len(pool) < n:
            pool.append(self.netns(f"mhbq{TAGS[contender]}"))
        return pool[:n]

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
        (self.tmp / "multus-net.d").mkdir()
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

    # -- the contenders: a pod with eth0 + k secondary networks ---------------------

    def ours_call(self, command: str, cid: str, pod_ns: str, k: int) -> Outcome:
        """The `multihome` shim, which hands the whole pod to the daemon."""
        return try_exe(self.bin_dir / "multihome",
                       cni_env(command, cid, pod_ns, "eth0", self.bin_dir, pod_args(k)),
                       self.engine_conf)

    def go_call(self, command: str, cid: str, pod_ns: str, k: int) -> Outcome:
        """What Multus does, without Multus: exec each delegate in turn, DEL in reverse."""
        confs = [("eth0", bridge_conf("gdef", "mhbgdef", "10.217.0.0/22", self.tmp / "ipam-go"))]
        confs += [(f"net{i}", bridge_conf(f"g-{i}", f"mhbg{i}", f"10.218.{i}.0/24",
                                          self.tmp / "ipam-go")) for i in range(1, k + 1)]
        total = 0.0
        for ifname, conf in confs if command != "DEL" else reversed(confs):
            outcome = try_exe(GO_DIR / "bridge", cni_env(command, cid, pod_ns, ifname, GO_DIR),
                              conf)
            total += outcome.seconds
            if outcome.error:
                return Outcome(total, outcome.error)
        return Outcome(total)

    def multus_conf(self, k: int) -> dict[str, Any]:
        """Multus thin's config: no kubeconfig, so its delegates are all it runs.

        binDir is where it looks for the delegates' plugins (before CNI_PATH); cniDir holds
        what it caches per container (the delegates, for DEL) and libcni's result cache;
        confDir is only read with a kubeconfig, but gets a dir of its own all the same.
        """
        data = self.tmp / "ipam-multus"
        delegates = [bridge_conf("mdef", "mhbmdef", "10.221.0.0/22", data)]
        delegates += [bridge_conf(f"m-{i}", f"mhbm{i}", f"10.222.{i}.0/24", data)
                      for i in range(1, k + 1)]
        return {"cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
                "binDir": str(GO_DIR), "cniDir": str(self.multus_cache),
                "confDir": str(self.tmp / "multus-net.d"), "delegates": delegates}

    def multus_call(self, command: str, cid: str, pod_ns: str, k: int) -> Outcome:
        assert self.multus is not None
        return try_exe(self.multus, cni_env(command, cid, pod_ns, "eth0", GO_DIR, pod_args(k)),
                       self.multus_conf(k))

    def contenders(self) -> dict[str, PodCall]:
        calls: dict[str, PodCall] = {GO: self.go_call}
        if self.multus is not None:
            calls[MULTUS] = self.multus_call
        calls[OURS] = self.ours_call
        return calls

    def pod_namespaces(self) -> dict[str, str]:
        """One pod namespace per contender, for benchmarks that reuse one pod."""
        return {name: self.netns(f"mhbp{TAGS[name]}") for name in self.contenders()}

    def pod_cycle(self, call: PodCall, k: int, pod_ns: str, samples: Samples) -> None:
        """ADD then DEL one pod; either failing stops the benchmark (after the DEL)."""
        cid = self.cid("p")
        add = call("ADD", cid, pod_ns, k)
        delete = call("DEL", cid, pod_ns, k)
        for command, outcome in (("ADD", add), ("DEL", delete)):
            if outcome.error:
                raise SystemExit(f"pod with eth0 + {k} networks: {command} failed: "
                                 f"{outcome.error}")
        for what, t in (("ADD", add.seconds), ("DEL", delete.seconds),
                        ("ADD+DEL", add.seconds + delete.seconds)):
            samples.setdefault(what, []).append(t)

    def compare(self, *sides: Side) -> list[Samples]:
        """Warm each side once, then run them in turn, `runs` times, in rotating order."""
        results: list[Samples] = [{} for _ in sides]
        for side in sides:
            side({})  # page cache, first-call imports in the daemon
        n = len(sides)
        for i in range(self.runs):
            # who goes first rotates, and every other lap runs backwards, so no side
            # always follows the same other one (a burst of dirty pages, a busy bridge)
            order = [(i + j) % n for j in range(n)]
            if (i // n) % 2:
                order.reverse()
            for j in order:
                sides[j](results[j])
        return results

    def compare_pods(self, k: int, pods: dict[str, str]) -> dict[str, Samples]:
        calls = self.contenders()
        results = self.compare(*(partial(self.pod_cycle, call, k, pods[name])
                                 for name, call in calls.items()))
        return dict(zip(calls, results, strict=True))

    def table(self, title: str, rows: list[tuple[str, dict[str, float], str]]) -> None:
        """Go, Multus thin and multihome side by side; ratios are multihome's to each."""
        self.out(f"### {title}")
        self.out("")
        self.out(f"| operation | {GO} ms | {MULTUS} ms | {OURS} ms | {OURS}/Go "
                 f"| {OURS}/Multus | target |")
        self.out("|---|---:|---:|---:|---:|---:|---|")
        for what, figures, target in rows:
            ours = figures[OURS]
            self.out(f"| {what} | {cell(figures.get(GO))} | {cell(figures.get(MULTUS))} "
                     f"| {ours:.1f} | {ratio(ours, figures.get(GO))} "
                     f"| {ratio(ours, figures.get(MULTUS))} | {target} |")
        self.out("")

    def burst(self, call: PodCall, pods: list[str], k: int = 1) -> Burst:
        """ADD a pod in each namespace, BURST_PARALLEL at a time, then DEL them all alike.

        A failed call is recorded, never raised: the burst is about how many fail.
        """
        cids = [self.cid("b") for _ in pods]
        cpu_before = self.cpu()

        def phase(command: str) -> tuple[float, list[Outcome]]:
            start = time.perf_counter()
            with ThreadPoolExecutor(BURST_PARALLEL) as pool:
                outcomes = list(pool.map(lambda c, p: call(command, c, p, k), cids, pods))
            return time.perf_counter() - start, outcomes

        add_wall, adds = phase("ADD")
        del_wall, dels = phase("DEL")
        return Burst(add_wall, adds, del_wall, dels, self.cpu() - cpu_before)

    def cpu(self) -> float:
        """CPU seconds of the processes this bench started (execs it waited for, the daemon)."""
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        # the daemon is not reaped until the end, so it is not in RUSAGE_CHILDREN yet
        daemon = cpu_seconds(self.daemon.pid) if self.daemon is not None else 0.0
        return children.ru_utime + children.ru_stime + daemon

    # -- the benchmarks ----------------------------------------------------------

    def one_attachment(self) -> float:
        pods = self.pod_namespaces()
        pod_o, pod_g = pods[OURS], pods[GO]
        conf_o = bridge_conf("one-o", "mhb1o", "10.219.1.0/24", self.tmp / "ipam-ours")
        conf_g = bridge_conf("one-g", "mhb1g", "10.219.2.0/24", self.tmp / "ipam-go")
        fast = {"MULTIHOME_SOCKET": self.socket}

        def cycle(exe: Path, conf: dict[str, Any], pod: str, path: Path, extra: dict[str, str],
                  s: Samples) -> None:
            cid = self.cid("b")
            add = run_exe(exe, cni_env("ADD", cid, pod, "eth0", path, **extra), conf)
            delete = run_exe(exe, cni_env("DEL", cid, pod, "eth0", path, **extra), conf)
            version = run_exe(exe, {"PATH": os.environ["PATH"], "CNI_COMMAND": "VERSION"}, None)
            for what, t in (("ADD", add), ("DEL", delete), ("ADD+DEL", add + delete),
                            ("VERSION", version)):
                s.setdefault(what, []).append(t)

        o, g = self.compare(
            partial(cycle, self.bin_dir / "bridge", conf_o, pod_o, self.bin_dir, fast),
            partial(cycle, GO_DIR / "bridge", conf_g, pod_g, GO_DIR, {}))
        # the engine path too: the `multihome` shim with only the default network, against
        # Go's one exec and Multus thin with its one delegate
        engine = self.compare_pods(0, pods)
        targets = {"ADD+DEL": "≤ 0.7x Go", "ADD": "≤ 1.0x Go"}
        rows = [(w, {GO: ms(g[w]), OURS: ms(o[w])}, targets.get(w, ""))
                for w in ("ADD+DEL", "ADD", "DEL", "VERSION")]
        rows.append(("ADD+DEL via `multihome` shim (engine, eth0 only)",
                     {name: ms(s["ADD+DEL"]) for name, s in engine.items()}, ""))
        self.table("1. One bridge attachment (host-local, macspoofchk): `bridge` shim→daemon "
                   "vs /usr/lib/cni/bridge (and, through the engine, Multus thin with one "
                   "delegate)", rows)
        return ms(o["ADD+DEL"])

    def three_networks(self) -> None:
        results = self.compare_pods(2, self.pod_namespaces())
        self.table("2. Pod with eth0 + net1 + net2: `multihome` shim→daemon vs three Go "
                   "bridge execs in sequence vs Multus thin with three delegates",
                   [(w, {name: ms(s[w]) for name, s in results.items()},
                     "≤ 0.3x Go" if w == "ADD+DEL" else "")
                    for w in ("ADD+DEL", "ADD", "DEL")])

    def scaling(self) -> None:
        pods = self.pod_namespaces()
        names = list(self.contenders())
        self.out("### 3. Secondary networks per pod: ADD+DEL and the cost of each added network")
        self.out("")
        self.out(f"| secondaries | {GO} ms | {MULTUS} ms | {OURS} ms | {OURS}/Go "
                 f"| {OURS}/Multus | Go ms/added net | Multus ms/added net "
                 f"| {OURS} ms/added net |")
        self.out("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        prev: tuple[int, dict[str, float]] | None = None
        for k in SECONDARY_COUNTS:
            results = self.compare_pods(k, pods)
            now = {name: ms(results[name]["ADD+DEL"]) for name in names}
            per: dict[str, float] = {}
            if prev is not None:
                per = {name: (now[name] - prev[1][name]) / (k - prev[0]) for name in names}
            self.out(f"| {k} | {cell(now.get(GO))} | {cell(now.get(MULTUS))} "
                     f"| {now[OURS]:.1f} | {ratio(now[OURS], now.get(GO))} "
                     f"| {ratio(now[OURS], now.get(MULTUS))} | {cell(per.get(GO))} "
                     f"| {cell(per.get(MULTUS))} | {cell(per.get(OURS))} |")
            prev = (k, now)
        self.out("")

    def burst_vs_multus(self) -> None:
        calls = {name: call for name, call in self.contenders().items() if name != GO}
        pools = {name: self.pod_pool(name, self.pods) for name in calls}
        for name, call in calls.items():  # warm: bridges made, page cache, daemon imports
            self.burst(call, pools[name][:BURST_PARALLEL])
        bursts: dict[str, list[Burst]] = {name: [] for name in calls}
        for i in range(self.bursts):
            for name in list(calls) if i % 2 == 0 else reversed(list(calls)):
                bursts[name].append(self.burst(calls[name], pools[name]))
        self.out(f"### 4. A burst of {self.pods} pods (eth0 + net1 each), {BURST_PARALLEL} at "
                 "a time: `multihome` shim→daemon vs Multus thin")
        self.out("")
        self.out("| contender | ADD pods/s | DEL pods/s | ADD p50 ms | ADD p99 ms | DEL p50 ms "
                 "| CPU s a burst | failures | busy |")
        self.out("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        add_rate: dict[str, float] = {}
        add_p99: dict[str, float] = {}
        for name in (MULTUS, OURS):
            if name not in bursts:
                self.out(f"| {name} | - | - | - | - | - | - | - | - |")
                continue
            runs = bursts[name]
            add_rate[name] = statistics.median(
                sum(not o.error for o in b.adds) / b.add_wall for b in runs)
            del_rate = statistics.median(sum(not o.error for o in b.dels) / b.del_wall
                                         for b in runs)
            adds = [o.seconds for b in runs for o in b.adds if not o.error] or [0.0]
            dels = [o.seconds for b in runs for o in b.dels if not o.error] or [0.0]
            add_p99[name] = pct(adds, 0.99)
            failed = [o for b in runs for o in b.failures]
            self.out(f"| {name} | {add_rate[name]:.1f} | {del_rate:.1f} | {pct(adds, 0.5):.0f} "
                     f"| {add_p99[name]:.0f} | {pct(dels, 0.5):.0f} "
                     f"| {statistics.median(b.cpu for b in runs):.1f} | {len(failed)} "
                     f"| {sum(o.busy for o in failed)} |")
        self.out("")
        if MULTUS in add_rate:
            below = "yes" if add_p99[OURS] < add_p99[MULTUS] else "no"
            self.out(f"ADD throughput multihome/Multus thin: "
                     f"{add_rate[OURS] / add_rate[MULTUS]:.2f}x (target ≥ 1.5x); multihome's "
                     f"ADD p99 below Multus's: {below} ({add_p99[OURS]:.0f} vs "
                     f"{add_p99[MULTUS]:.0f} ms).")
        self.out(f"Pods/s: successful calls over the phase's wall time, median of "
                 f"{self.bursts} bursts each (who goes first alternates); latencies over all "
                 "of them. CPU: the execs this bench waited for (shims, Multus and its "
                 "delegates) plus the daemon and anything below it. Failures: CNI errors of "
                 "ADD or DEL; busy: those whose msg says the daemon is busy.")
        self.out(self.leftovers())
        self.report_failures(bursts)
        self.out("")

    def leftovers(self) -> str:
        assert self.daemon is not None
        records = list((self.tmp / "cache" / "multihome").glob("*.json"))
        multus = [p for p in self.multus_cache.rglob("*") if p.is_file()]
        return (f"Daemon RSS after: {Memory.of(self.daemon.pid).rss / MIB:.1f} MiB; "
                f"multihome attachment records left: {len(records)}; files left in Multus's "
                f"cniDir: {len(multus)}.")

    def report_failures(self, bursts: dict[str, list[Burst]]) -> None:
        for name, runs in bursts.items():
            messages = sorted({o.error for b in runs for o in b.failures})
            for msg in messages[:3]:
                self.out(f"- {name} failure: {msg[:300]}")

    def memory(self) -> None:
        assert self.daemon is not None
        pool = self.pod_pool(OURS, MEMORY_BURST_PODS)
        self.out(f"### 6. Daemon memory: {MEMORY_BURSTS} bursts of {MEMORY_BURST_PODS} pods "
                 f"(eth0 + net1 each, {BURST_PARALLEL} at a time) through the daemon")
        self.out("")
        self.out("| after | RSS MiB | PSS MiB | child processes | their PSS MiB | total PSS MiB "
                 "| failures | busy |")
        self.out("|---|---:|---:|---:|---:|---:|---:|---:|")
        totals: list[Memory] = []
        children_seen = 0
        for i in range(MEMORY_BURSTS + 1):
            failed, busy = "-", "-"
            if i:
                failures = self.burst(self.ours_call, pool).failures
                failed, busy = str(len(failures)), str(sum(o.busy for o in failures))
            # read once the daemon settled: it hands freed heap back when idle, at most
            # once per TRIM_INTERVAL_S (daemon/memory.py)
            time.sleep(TRIM_INTERVAL_S + 1)
            own = Memory.of(self.daemon.pid)
            kids = descendants(self.daemon.pid)
            children_seen = max(children_seen, len(kids))
            kids_pss = sum(Memory.of(pid).pss for pid in kids)
            totals.append(Memory(own.rss, own.pss + kids_pss))
            label = f"burst {i} ({i * MEMORY_BURST_PODS} pods)" if i else "before the bursts"
            self.out(f"| {label} | {own.rss / MIB:.1f} | {own.pss / MIB:.1f} | {len(kids)} "
                     f"| {kids_pss / MIB:.1f} | {(own.pss + kids_pss) / MIB:.1f} "
                     f"| {failed} | {busy} |")
        self.out("")
        second, last = totals[2], totals[-1]
        self.out(f"Growth from burst 2 to burst {MEMORY_BURSTS}: RSS "
                 f"{(last.rss - second.rss) / MIB:+.1f} MiB, PSS "
                 f"{(last.pss - second.pss) / MIB:+.1f} MiB (target: flat); total PSS after "
                 f"{MEMORY_BURSTS * MEMORY_BURST_PODS} pods: {last.pss / MIB:.1f} MiB "
                 "(target ≤ 60 MiB).")
        self.out("RSS and PSS from /proc/<pid>/smaps_rollup, read "
                 f"{TRIM_INTERVAL_S + 1:.0f} s after each burst's DELs (the daemon returns "
                 "freed heap when idle, at most once per "
                 f"{TRIM_INTERVAL_S:.0f} s): PSS "
                 "splits each shared page among the processes mapping it. "
                 + ("The daemon had no child processes." if not children_seen else
                    "The daemon has child processes: their PSS is summed into the total."))
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
    parser.add_argument("--pods", type=int, default=100, help="pods in a burst (benchmark 4)")
    parser.add_argument("--bursts", type=int, default=3,
                        help="bursts of each contender in benchmark 4")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--only", type=int, action="append", choices=BENCHMARKS,
                        help="run only this benchmark (repeatable); implies --no-write")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_daemon.py needs root (namespaces, bridges, nft chains)")
    if not (GO_DIR / "bridge").exists():
        sys.exit("the Go reference plugins are missing: make install adds them")
    from pyroute2 import netns

    from multihome import paths

    multus = multus_binary()
    tmp = Path(tempfile.mkdtemp(prefix="mh-bench-daemon-"))
    # the node lets configs name the bench's own data dirs (host-local dataDir)
    os.environ[paths.CONFIG_PATH_ROOTS_ENV] = ":".join((*paths.DEFAULT_CONFIG_PATH_ROOTS, str(tmp)))
    bench: Bench | None = None
    try:
        with node_namespace() as node:
            bench = Bench(tmp, node, opts.runs, opts.pods, opts.bursts, multus)
            bench.out(f"{SECTION} ({datetime.date.today().isoformat()})")
            bench.out("")
            bench.out(f"Machine: {machine()}. Medians of {opts.runs} interleaved runs; "
                      "`make bench` (`.venv/bin/python bench/bench_daemon.py`). "
                      + (f"Multus thin: {multus.parent.parent.name} built from its module."
                         if multus else "Multus thin is not built (`make cluster-bins`): "
                         "its columns show -."))
            bench.out("")
            try:
                bench.setup()
                wanted = set(opts.only or BENCHMARKS)
                one = bench.one_attachment() if 1 in wanted else 0.0
                if 2 in wanted:
                    bench.three_networks()
                if 3 in wanted:
                    bench.scaling()
                if 4 in wanted:
                    bench.burst_vs_multus()
                if 5 in wanted:
                    bench.floor(one)
                if 6 in wanted:
                    bench.memory()
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
        write_section(SECTION, bench.lines)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
