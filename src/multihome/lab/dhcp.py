"""The lab's DHCP (`lab up --dhcp`): a DHCP server on the external LAN and the node daemon
that holds the pods' leases.

dnsmasq (Debian's, DHCP only) runs in the external namespace on its `eth0`, so the LAN
behind dev-bridge has a DHCP server as a datacenter LAN would; a NAD with
`"ipam": {"type": "dhcp"}` on dev-bridge then gets its address from it. The lab's engine
runs in the CLI, which ends after each command, so the leases live in a `multihome
daemon` the lab starts (its socket and state under the lab's state dir); the lab's pod
commands point the `dhcp` IPAM at it. `lab down` stops both (pods are deleted first, so
their leases are released).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from multihome.errors import MultihomeError
from multihome.ipam import dhcp_leases
from multihome.lab.cluster import procs
from multihome.lab.settings import LabSettings
from multihome.net import netns

DNSMASQ = "/usr/sbin/dnsmasq"
LEASE_TIME = "1h"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
Progress = Callable[[str], None]


class LabDhcpError(MultihomeError):
    pass


@dataclass(frozen=True)
class _Layout:
    """Logs and pid files of the lab's DHCP processes (procs' ProcLayout)."""

    state_dir: str

    def dir(self, component: str) -> Path:
        return Path(self.state_dir, component)

    def log(self, component: str) -> Path:
        return self.dir(component) / "log"

    def pidfile(self, component: str) -> Path:
        return self.dir(component) / "pid"


SERVER, DAEMON = "dhcp-server", "daemon"


def server_dir(settings: LabSettings) -> str:
    return str(_Layout(settings.state_dir).dir(SERVER))


def daemon_dir(settings: LabSettings) -> str:
    return str(_Layout(settings.state_dir).dir(DAEMON))


def daemon_socket(settings: LabSettings) -> str:
    return os.path.join(daemon_dir(settings), "multihome.sock")


def pool(settings: LabSettings) -> tuple[str, str, str]:
    """(first, last, netmask) of the addresses handed out: the upper half of the external
    LAN, beside the external host (its address is the router)."""
    host = ipaddress.ip_interface(settings.external_address)
    net = host.network
    if net.version != 4 or net.num_addresses < 8:
        raise LabDhcpError(f"--dhcp needs an IPv4 external network of /29 or larger, "
                           f"got {net}")
    first = net.network_address + net.num_addresses // 2
    last = net.broadcast_address - 1
    return str(first), str(last), str(net.netmask)


def use(settings: LabSettings) -> None:
    """Point this process's `dhcp` IPAM at the lab's daemon (when the lab has one)."""
    if settings.dhcp:
        dhcp_leases.forward_to(daemon_socket(settings))


def _start(layout: _Layout, component: str, argv: list[str], ext_path: str | None) -> int:
    # private: its leases and logs are for root alone
    os.makedirs(layout.dir(component), mode=0o700, exist_ok=True)
    # a child forked from a thread inside a namespace starts in that namespace
    with netns.entered(ext_path) if ext_path else contextlib.nullcontext():
        return procs.start(layout, component, argv)


def up(settings: LabSettings, progress: Progress) -> None:
    if not os.access(DNSMASQ, os.X_OK):
        raise LabDhcpError(f"`lab up --dhcp` needs {DNSMASQ} (Debian package dnsmasq-base)")
    first, last, mask = pool(settings)
    router = str(ipaddress.ip_interface(settings.external_address).ip)
    layout = _Layout(settings.state_dir)
    sdir = server_dir(settings)
    try:
        _start(layout, SERVER, [
            DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            "--user=root", "--group=root", "--interface=eth0", "--bind-interfaces",
            "--except-interface=lo", "--no-ping",
            f"--dhcp-range={first},{last},{mask},{LEASE_TIME}",
            f"--dhcp-leasefile={os.path.join(sdir, 'leases')}",
            # its own, or dnsmasq writes /run/dnsmasq.pid on the host
            f"--pid-file={os.path.join(sdir, 'dnsmasq.pid')}",
            f"--dhcp-option=option:router,{router}", "--log-dhcp",
            f"--log-facility={os.path.join(sdir, 'dnsmasq.log')}"],
            netns.named_path(settings.external_netns))
        progress(f"DHCP server in {settings.external_netns}: {first}-{last}, router {router}")
        exe = os.path.join(os.path.dirname(sys.executable), "multihome")
        _start(layout, DAEMON, [exe, "daemon", "--socket", daemon_socket(settings),
                                "--conf-dir", "", "--state-dir", daemon_dir(settings)], None)
        procs.wait_for(layout, DAEMON, lambda: os.path.exists(daemon_socket(settings)),
                       START_TIMEOUT, "listening")
    except procs.ClusterError as e:
        raise LabDhcpError(f"lab DHCP: {e}") from e
    progress(f"lease daemon on {daemon_socket(settings)} (holds and renews the pods' leases)")


def down(settings: LabSettings, progress: Progress) -> None:
    layout = _Layout(settings.state_dir)
    for component, name in ((DAEMON, "lease daemon"), (SERVER, "DHCP server")):
        if procs.pid_of(layout, component) is not None:
            procs.stop(layout, component, STOP_TIMEOUT)
            progress(f"{name} stopped")
        shutil.rmtree(layout.dir(component), ignore_errors=True)
