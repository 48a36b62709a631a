"""DHCP leases held by the node daemon's lease manager, against a real dnsmasq.

Runs as root. A throw-away node namespace with a bridge, dnsmasq behind it (the tests'
helper, tests/support/dhcp_server.py) and N pod namespaces on the bridge; everything is
removed at the end, even on failure. Prints: ADD (DISCOVER to ACK, the lease recorded)
median and p99, resident memory and threads per held lease, the time to stop all clients
(daemon SIGTERM) and to re-adopt them (daemon start).

    .venv/bin/python bench/bench_dhcp.py [--pods 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from multihome.ipam.dhcp_leases import LeaseKey, LeaseManager
from multihome.net.dhcp import ClientOptions
from support.dhcp_server import dhcp_lan
from support.netns import Netns, add_netns, del_netns, unique


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=50)
    args = parser.parse_args()
    made: list[Netns] = []
    try:
        node, server_ns = add_netns(unique("mhbn")), add_netns(unique("mhbs"))
        made += [node, server_ns]
        node.run("ip", "link", "add", "bdhcp0", "type", "bridge")
        node.run("ip", "link", "set", "bdhcp0", "up")
        pods = []
        for i in range(args.pods):
            pod = add_netns(unique("mhbp"))
            made.append(pod)
            node.run("ip", "link", "add", f"bp{i}", "type", "veth", "peer", "name", "eth0",
                     "netns", pod.name)
            node.run("ip", "link", "set", f"bp{i}", "master", "bdhcp0", "up")
            pods.append(pod)
        with tempfile.TemporaryDirectory() as tmp, \
                dhcp_lan(node, "bdhcp0", server_ns, Path(tmp) / "dnsmasq", t1=300, t2=500):
            manager = LeaseManager(str(Path(tmp) / "state"))
            rss0, threads0 = rss_kib(), threading.active_count()
            times = []
            for i, pod in enumerate(pods):
                key = LeaseKey(f"bench{i}", "benchnet", "eth0")
                start = time.perf_counter()
                manager.acquire(key, pod.path, ClientOptions(
                    "eth0", key.client_id.encode(), (3, 1, 51, 58, 59)))
                times.append(time.perf_counter() - start)
            per_lease = (rss_kib() - rss0) / args.pods
            threads = (threading.active_count() - threads0) / args.pods
            start = time.perf_counter()
            manager.shutdown()
            stop_s = time.perf_counter() - start
            again = LeaseManager(str(Path(tmp) / "state"))
            start = time.perf_counter()
            adopted = again.readopt()
            readopt_s = time.perf_counter() - start
            again.shutdown()
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"{args.pods} leases: ADD median {statistics.median(times) * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms")
        print(f"per held lease: +{per_lease:.0f} KiB resident, +{threads:.1f} thread")
        print(f"stop all clients: {stop_s * 1000:.0f} ms; re-adopt {adopted}: "
              f"{readopt_s * 1000:.0f} ms")
    finally:
        for ns in reversed(made):
            del_netns(ns.name)


if __name__ == "__main__":
    main()
