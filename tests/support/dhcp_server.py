"""A real DHCP server for tests: Debian's dnsmasq in a test-made namespace.

`dnsmasq_server` starts it on one interface of a namespace (DHCP only: `--port=0` turns
DNS off) with its lease file and log in a temporary directory, and always stops it.
Short leases: dnsmasq's minimum lease time is 2 minutes, so renewal is made quick with
T1/T2 (options 58/59), which dnsmasq sends as configured.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import multihome.ipam.dhcp as dhcp_ipam
from multihome.cni.skel import dispatch
from support.netns import Netns
from support.plugin_harness import Outcome

DNSMASQ = "/usr/sbin/dnsmasq"


def lease_file_lines(path: Path) -> list[str]:
    """dnsmasq's lease file, read whole. dnsmasq rewrites it in place (truncate, write),
    so a read can catch it empty or half written: the text counts once two reads in a
    row agree (and, being written after the ACK went out, it is waited for a moment)."""
    def read() -> str:
        try:
            return path.read_text()
        except FileNotFoundError:
            return ""

    text = read()
    for _ in range(20):
        time.sleep(0.02)
        again = read()
        if again == text:
            break
        text = again
    return text.splitlines()


@dataclass(frozen=True)
class ServerLease:
    """One line of dnsmasq's lease file."""

    expires: int  # epoch seconds
    mac: str
    ip: str
    hostname: str
    client_id: str


@dataclass
class DhcpServer:
    ns: Netns
    ifname: str
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def lease_file(self) -> Path:
        return self.workdir / "dnsmasq.leases"

    @property
    def log_file(self) -> Path:
        return self.workdir / "dnsmasq.log"

    def leases(self) -> list[ServerLease]:
        lines = lease_file_lines(self.lease_file)
        out = []
        for line in lines:
            parts = line.split()
            if len(parts) >= 5 and parts[0] != "duid":
                out.append(ServerLease(int(parts[0]), parts[1], parts[2], parts[3], parts[4]))
        return out

    def lease_for(self, ip: str) -> ServerLease | None:
        return next((lease for lease in self.leases() if lease.ip == ip), None)

    def log_lines(self, word: str) -> list[str]:
        """Log lines naming a DHCP message (`DHCPACK`, `DHCPRELEASE`, …)."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if f" {word}(" in line]

    def wait_for(self, what: str, check: object, timeout: float = 30.0) -> None:
        """Poll `check()` until true; fails the test with `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.1)
        pytest.fail(f"dnsmasq: {what} not seen within {timeout:g} s; log:\n"
                    + "\n".join(self.log_file.read_text(errors="replace").splitlines()[-30:]))

    def start(self, *, range_start: str, range_end: str, netmask: str, router: str,
              lease: str = "2m", t1: int = 0, t2: int = 0) -> None:
        if not os.access(DNSMASQ, os.X_OK):
            pytest.skip(f"{DNSMASQ} is not installed (Debian package dnsmasq-base)")
        argv = [
            "ip", "netns", "exec", self.ns.name, DNSMASQ, "--keep-in-foreground",
            "--conf-file=/dev/null", "--port=0", "--user=root", "--group=root",
            f"--interface={self.ifname}", "--bind-interfaces", "--except-interface=lo",
            f"--dhcp-range={range_start},{range_end},{netmask},{lease}",
            f"--dhcp-leasefile={self.lease_file}", f"--pid-file={self.workdir / 'pid'}",
            "--no-ping", "--log-dhcp", f"--log-facility={self.log_file}",
            f"--dhcp-option=option:router,{router}", *self.extra]
        if t1:
            argv.append(f"--dhcp-option=option:T1,{t1}")
        if t2:
            argv.append(f"--dhcp-option=option:T2,{t2}")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not self.log_file.exists() or "started" not in self.log_file.read_text():
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                pytest.fail(f"dnsmasq exited at start: {err}")
            if time.monotonic() > deadline:
                pytest.fail("dnsmasq did not start within 10 s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None


@contextlib.contextmanager
def dnsmasq_server(ns: Netns, ifname: str, workdir: Path, **start: object) -> Iterator[
        DhcpServer]:
    """A started dnsmasq on `ifname` in `ns`; stopped (and its files removed) however the
    body ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = DhcpServer(ns, ifname, workdir)
    try:
        server.start(**start)  # type: ignore[arg-type]
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


SERVER_ADDRESS = "10.71.0.1"


@contextlib.contextmanager
def dhcp_lan(node: Netns, bridge: str, server_ns: Netns, workdir: Path,
             **start: object) -> Iterator[DhcpServer]:
    """The LAN of a node bridge with a DHCP server on it: `bridge` in `node` (made when
    missing), a veth from it to `server_ns`, where dnsmasq serves 10.71.0.50-99/24 with
    router 10.71.0.1 (its own address). Whoever made the namespaces removes them; the
    veth goes with them."""
    if node.run("ip", "link", "show", bridge, check=False).returncode != 0:
        node.run("ip", "link", "add", bridge, "type", "bridge")
        node.run("ip", "link", "set", bridge, "up")
    port = f"dp{server_ns.name[-6:]}"
    node.run("ip", "link", "add", port, "type", "veth", "peer", "name", "srv0", "netns",
             server_ns.name)
    node.run("ip", "link", "set", port, "master", bridge, "up")
    server_ns.run("ip", "addr", "add", f"{SERVER_ADDRESS}/24", "dev", "srv0")
    server_ns.run("ip", "link", "set", "srv0", "up")
    opts: dict[str, object] = {"range_start": "10.71.0.50", "range_end": "10.71.0.99",
                               "netmask": "255.255.255.0", "router": SERVER_ADDRESS, **start}
    with dnsmasq_server(server_ns, "srv0", workdir, **opts) as server:
        yield server


@dataclass
class DhcpWorld:
    """A node (the bridge plugin runs there in-process), its bridge with a DHCP server
    on it, and the lease manager the daemon would own, installed in this process."""

    lab: Any
    bridge: str
    server: DhcpServer
    manager: Any
    make_ns: Any

    def conf(self, **ipam: Any) -> dict[str, Any]:
        conf: dict[str, Any] = self.lab.conf(self.bridge, subnet=None, name="dhcpnet",
                                             ipam={"type": "dhcp", **ipam})
        return conf

    def pod_addresses(self, pod: Netns, ifname: str = "eth0") -> list[str]:
        out = pod.run("ip", "-4", "-o", "addr", "show", "dev", ifname).stdout
        return [line.split()[3] for line in out.splitlines()]

    def ipam(self, command: str, conf: dict[str, Any], pod: Netns, *, cid: str = "cid1",
             ifname: str = "eth0", args: str = "") -> Outcome:
        """The dhcp IPAM alone, as an interface plugin delegates to it."""
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_IFNAME": ifname,
               "CNI_NETNS": pod.path, "CNI_PATH": "/usr/lib/cni"}
        if args:
            env["CNI_ARGS"] = args
        rc, out = dispatch(dhcp_ipam, env, json.dumps(conf).encode())
        return Outcome(rc, json.loads(out) if out else None)
