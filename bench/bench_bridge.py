"""ADD+DEL of one bridge attachment (host-local, macspoofchk): ours vs the Go reference.

Runs as root. Both implementations work inside a throw-away namespace that plays the
node (this process switches into it, so no `ip netns exec` wrapper is timed), each with
its own bridge, subnet and data dir, runs interleaved so that machine noise hits both.
Prints medians and the ratio ours/go; also the start-up cost of a bare VERSION call.

    .venv/bin/python bench/bench_bridge.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GO_DIR = Path("/usr/lib/cni")


@dataclass
class Impl:
    name: str
    bridge_exe: Path
    cni_path: Path
    subnet: str
    samples: dict[str, list[float]] = field(default_factory=dict)

    def record(self, what: str, seconds: float) -> None:
        self.samples.setdefault(what, []).append(seconds * 1000)


def run_plugin(exe: Path, env: dict[str, str], conf: dict[str, object] | None) -> float:
    stdin = json.dumps(conf).encode() if conf else b""
    start = time.perf_counter()
    proc = subprocess.run([str(exe)], input=stdin, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{exe} {env['CNI_COMMAND']} failed: {proc.stdout.decode()}")
    return elapsed


def attach_cycle(impl: Impl, container_ns: str, data_dir: Path, run: int) -> None:
    conf: dict[str, object] = {
        "cniVersion": "1.0.0", "name": f"bench-{impl.name}", "type": "bridge",
        "bridge": f"mhbench{impl.name}", "isGateway": True, "macspoofchk": True,
        "ipam": {"type": "host-local", "dataDir": str(data_dir),
                 "ranges": [[{"subnet": impl.subnet}]]}}
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin"), "CNI_CONTAINERID":
           f"bench-{impl.name}-{run}", "CNI_NETNS": f"/var/run/netns/{container_ns}",
           "CNI_IFNAME": f"e{impl.name}", "CNI_PATH": str(impl.cni_path)}
    add = run_plugin(impl.bridge_exe, {**env, "CNI_COMMAND": "ADD"}, conf)
    delete = run_plugin(impl.bridge_exe, {**env, "CNI_COMMAND": "DEL"}, conf)
    impl.record("ADD", add)
    impl.record("DEL", delete)
    impl.record("ADD+DEL", add + delete)


def version_call(impl: Impl) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": "VERSION"}
    impl.record("VERSION", run_plugin(impl.bridge_exe, env, None))


def interleave(impls: list[Impl], runs: int, step: Callable[[Impl, int], None]) -> None:
    step(impls[0], -1)  # warm the page cache for both before timing
    step(impls[1], -1)
    for impl in impls:
        impl.samples.clear()
    for i in range(runs):
        order = impls if i % 2 == 0 else impls[::-1]
        for impl in order:
            step(impl, i)


def table(impls: list[Impl], runs: int) -> str:
    go, ours = impls
    lines = [f"{'operation':<10} {'go ms':>9} {'ours ms':>9} {'ours/go':>8}   (median of {runs})"]
    for what in ("ADD+DEL", "ADD", "DEL", "VERSION"):
        g, o = statistics.median(go.samples[what]), statistics.median(ours.samples[what])
        lines.append(f"{what:<10} {g:>9.1f} {o:>9.1f} {o / g:>7.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    if os.geteuid() != 0:
        sys.exit("bench_bridge.py needs root (it creates namespaces, bridges, nft chains)")
    if not (GO_DIR / "bridge").exists():
        sys.exit("the Go reference plugins are missing: make install adds them")

    from pyroute2 import netns

    from multihome import paths

    tmp = Path(tempfile.mkdtemp(prefix="mh-bench-"))
    # the node lets configs name the bench's own data dirs (host-local dataDir)
    os.environ[paths.CONFIG_PATH_ROOTS_ENV] = ":".join((*paths.DEFAULT_CONFIG_PATH_ROOTS, str(tmp)))
    suffix = os.urandom(3).hex()
    node_ns, pod_ns = f"mhbnode{suffix}", f"mhbpod{suffix}"
    entered = False
    try:
        bin_dir = tmp / "bin"
        subprocess.run([sys.executable, "-c", "from multihome.cli.main import main; main()",
                        "install-cni", "--bin-dir", str(bin_dir)], check=True)
        netns.create(node_ns)
        netns.create(pod_ns)
        netns.pushns(node_ns)  # children inherit: the bridge and nft rules stay in node_ns
        entered = True
        impls = [Impl("go", GO_DIR / "bridge", GO_DIR, "10.214.1.0/24"),
                 Impl("ours", bin_dir / "bridge", bin_dir, "10.214.2.0/24")]
        for impl in impls:
            (tmp / impl.name).mkdir()
        interleave(impls, runs, lambda impl, i: attach_cycle(impl, pod_ns, tmp / impl.name, i))
        add_del = {i.name: dict(i.samples) for i in impls}
        interleave(impls, runs, lambda impl, i: version_call(impl))
        for impl in impls:
            impl.samples.update(add_del[impl.name])
        print(table(impls, runs))
    finally:
        if entered:
            netns.popns()
        for name in (node_ns, pod_ns):
            if name in netns.listnetns():
                netns.remove(name)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
