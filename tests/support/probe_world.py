"""What the node's probes talk to, run inside the test's external namespace: a DNS server
(Debian's dnsmasq) and a TCP listener standing in for the API server; and the node
namespace's own resolv.conf (/etc/netns/NAME/resolv.conf, where `ip netns exec` and
multihome look for it). Each is a context manager that removes what it made."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from multihome.net import reach
from support.netns import Netns

DNSMASQ = "/usr/sbin/dnsmasq"
NETNS_ETC = Path("/etc/netns")

_LISTENER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
print("ready", flush=True)
time.sleep(600)
"""


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def dns_server(ns: Netns, address: str, records: dict[str, str]) -> Iterator[None]:
    """dnsmasq on `address`:53 answering only `records` (name -> IPv4 address)."""
    argv = ["ip", "netns", "exec", ns.name, DNSMASQ, "--keep-in-foreground",
            "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file",
            f"--listen-address={address}", "--bind-interfaces", "--user=root",
            "--group=root", "--log-facility=-"]
    argv += [f"--address=/{name}/{ip}" for name, ip in records.items()]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # ready once it answers a query (50 tries of at most 0.2 s)
        for _ in range(50):
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                raise RuntimeError(f"dnsmasq exited: {out}")
            if records and reach.resolves(next(iter(records)), netns_path=ns.path,
                                          timeout=0.2, servers=[address]):
                break
        yield
    finally:
        _stop(proc)


@contextmanager
def tcp_listener(ns: Netns, address: str, port: int) -> Iterator[None]:
    proc = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c", _LISTENER,
                             address, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        _stop(proc)


@contextmanager
def resolv_conf(ns: Netns, *nameservers: str) -> Iterator[Path]:
    """/etc/netns/NAME/resolv.conf for the namespace playing the node."""
    directory = NETNS_ETC / ns.name
    directory.mkdir(parents=True, exist_ok=False)
    path = directory / "resolv.conf"
    try:
        path.write_text("".join(f"nameserver {n}\n" for n in nameservers))
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)
