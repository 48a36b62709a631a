"""The masquerade binding's DHCP server: one dnsmasq per launcher pod, in its namespace.

KubeVirt's virt-launcher answers the guest's DHCP itself; here Debian's dnsmasq does,
with nothing but that: no DNS (`--port=0`), no config file, no lease or pid file, one
static lease (the VM NIC's MAC → 10.0.2.2, router 10.0.2.1), bound to `k6t-eth0` only.
It runs in the foreground of its own session (so it outlives the CLI, not the VM);
Nic.dhcp_pid and Nic.dhcp_started let `stop` signal that process and no other.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from multihome.net import netns
from multihome.node import process
from multihome.vm.errors import VMError
from multihome.vm.state import Nic

STEP = "dhcp"
DNSMASQ = "/usr/sbin/dnsmasq"
LOG_FILE = "dnsmasq.log"
SETTLE_SECONDS = 0.3  # dnsmasq fails on a bad interface or port at once
STOP_SECONDS = 3.0


def command(nic: Nic) -> list[str]:
    return [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            "--no-resolv", "--no-hosts", "--pid-file", "--leasefile-ro",
            "--bind-interfaces", f"--interface={nic.bridge}", "--except-interface=lo",
            "--dhcp-authoritative", "--log-dhcp", "--log-facility=-",
            f"--dhcp-range={nic.addresses[0].split('/')[0]},static,255.255.255.0,infinite",
            f"--dhcp-host={nic.mac},{nic.addresses[0].split('/')[0]},infinite",
            f"--dhcp-option=option:router,{nic.gateway}"]


def start(pod_netns: str, log_dir: str, nic: Nic) -> None:
    """Start the server for `nic` (masquerade-bound) and record its pid in it."""
    if shutil.which(DNSMASQ) is None:
        raise VMError(STEP, f"{DNSMASQ} is missing: install Debian's dnsmasq-base",
                      "the masquerade binding's DHCP server")
    with open(os.path.join(log_dir, LOG_FILE), "ab") as log:
        try:
            # the child is forked from this thread, inside the pod's namespace
            with netns.entered(pod_netns):
                proc = subprocess.Popen(command(nic), stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            raise VMError(STEP, "cannot start dnsmasq", str(e)) from e
    nic.dhcp_pid, nic.dhcp_started = proc.pid, process.start_time(proc.pid) or 0
    try:
        proc.wait(timeout=SETTLE_SECONDS)
    except subprocess.TimeoutExpired:
        return
    nic.dhcp_pid = nic.dhcp_started = 0
    with open(os.path.join(log_dir, LOG_FILE), errors="replace") as f:
        tail = " | ".join(f.read().strip().splitlines()[-3:])
    raise VMError(STEP, f"dnsmasq exited with code {proc.returncode}", tail)


def running(nic: Nic) -> bool:
    return bool(nic.dhcp_pid) and process.alive(nic.dhcp_pid, nic.dhcp_started)


def stop(nic: Nic) -> bool:
    """Stop the server if it is still the one started; True when one was running."""
    if not running(nic):
        return False
    process.signal_if_same(nic.dhcp_pid, nic.dhcp_started, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while running(nic) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running(nic):
        process.signal_if_same(nic.dhcp_pid, nic.dhcp_started, signal.SIGKILL)
    nic.dhcp_pid = nic.dhcp_started = 0
    return True
