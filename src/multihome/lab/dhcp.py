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
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from multihome import paths
from multihome.errors import MultihomeError
from multihome.ipam import dhcp_leases
from multihome.lab.settings import LabSettings
from multihome.net import netns
from multihome.node import process

DNSMASQ = "/usr/sbin/dnsmasq"
LEASE_TIME = "1h"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
Progress = Callable[[str], None]


class LabDhcpError(MultihomeError):
    pass


def server_dir(settings: LabSettings) -> str:
    return os.path.join(settings.state_dir, "dhcp-server")


def daemon_dir(settings: LabSettings) -> str:
    return os.path.join(settings.state_dir, "daemon")


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


def _pidfile(directory: str) -> str:
    return os.path.join(directory, "process.json")


def _running(directory: str) -> int | None:
    try:
        with open(_pidfile(directory)) as f:
            data = json.load(f)
        pid, started = int(data["pid"]), int(data["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if process.alive(pid, started) else None


def _start(directory: str, argv: list[str], ext_path: str | None) -> None:
    if _running(directory) is not None:
        return
    os.makedirs(directory, mode=0o700, exist_ok=True)
    # a child forked from a thread inside a namespace starts in that namespace
    with open(os.path.join(directory, "log"), "ab") as log, \
            netns.entered(ext_path) if ext_path else contextlib.nullcontext():
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    paths.write_file_atomic(_pidfile(directory), json.dumps(
        {"pid": proc.pid, "started": process.start_time(proc.pid)}), 0o600)


def _stop(directory: str) -> bool:
    pid = _running(directory)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _running(directory) is not None and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if _running(directory) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    return pid is not None


def _log_tail(directory: str) -> str:
    try:
        return Path(directory, "log").read_text(errors="replace").strip().splitlines()[-1]
    except (OSError, IndexError):
        return "(no log)"


def up(settings: LabSettings, progress: Progress) -> None:
    if not os.access(DNSMASQ, os.X_OK):
        raise LabDhcpError(f"`lab up --dhcp` needs {DNSMASQ} (Debian package dnsmasq-base)")
    first, last, mask = pool(settings)
    router = str(ipaddress.ip_interface(settings.external_address).ip)
    sdir = server_dir(settings)
    _start(sdir, [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
                  "--user=root", "--group=root", "--interface=eth0", "--bind-interfaces",
                  "--except-interface=lo", "--no-ping",
                  f"--dhcp-range={first},{last},{mask},{LEASE_TIME}",
                  f"--dhcp-leasefile={os.path.join(sdir, 'leases')}",
                  f"--pid-file={os.path.join(sdir, 'dnsmasq.pid')}",
                  f"--dhcp-option=option:router,{router}", "--log-dhcp",
                  f"--log-facility={os.path.join(sdir, 'dnsmasq.log')}"],
           netns.named_path(settings.external_netns))
    progress(f"DHCP server in {settings.external_netns}: {first}-{last}, router {router}")
    ddir = daemon_dir(settings)
    exe = os.path.join(os.path.dirname(sys.executable), "multihome")
    _start(ddir, [exe, "daemon", "--socket", daemon_socket(settings), "--conf-dir", "",
                  "--state-dir", ddir, "--log-level", "info"], None)
    deadline = time.monotonic() + START_TIMEOUT
    while not os.path.exists(daemon_socket(settings)):
        if _running(ddir) is None or time.monotonic() > deadline:
            raise LabDhcpError(f"the lab's daemon did not start: {_log_tail(ddir)}")
        time.sleep(0.05)
    progress(f"lease daemon on {daemon_socket(settings)} (holds and renews the pods' leases)")


def down(settings: LabSettings, progress: Progress) -> None:
    for name, directory in (("lease daemon", daemon_dir(settings)),
                            ("DHCP server", server_dir(settings))):
        if _stop(directory):
            progress(f"{name} stopped")
        shutil.rmtree(directory, ignore_errors=True)
