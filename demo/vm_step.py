"""The demo's VM step: a real VM on bridge-dev pings the external host and a pod, then
shows its pod network, a NIC hot-plug and unplug, and a live migration under a ping.

Called by lab_demo.py while the lab and its pods are up; it removes its VM itself.
The VM's eth0 is the pod network (masquerade binding, 10.0.2.2 by DHCP); its eth1 takes
the MAC the CNI plugin gave the launcher pod's net1 (bridge binding), so the seed NAD's
macspoofchk lets its traffic through.
"""

from __future__ import annotations

import glob
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

VM = "vm-demo"
VM_ADDRESS = "10.250.0.20/24"
EXTERNAL_NETNS = "mh-external"  # the lab's default external network


def missing_tools() -> str:
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 is not installed (qemu-system-x86)"
    if not glob.glob("/boot/vmlinuz-*"):
        return "no guest kernel in /boot (linux-image-amd64)"
    if shutil.which("busybox") is None:
        return "busybox is not installed (busybox-static)"
    return ""


def run(mh: Callable[..., subprocess.CompletedProcess[str]], step: Callable[[str], Any],
        namespace: str, external_host: str, pod_address: str) -> None:
    step("5b. a VM on bridge-dev (bridge binding) pings the external host and a pod")
    why = missing_tools()
    if why:
        print(f"skipped: {why}")
        return
    try:
        mh("vm", "run", VM, "-n", namespace, "--networks", "bridge-dev",
           "--address", f"net1={VM_ADDRESS}")
        mh("vm", "get", "-n", namespace)
        mh("vm", "describe", VM, "-n", namespace)
        mh("vm", "exec", VM, "-n", namespace, "--", "ip", "addr")
        mh("vm", "exec", VM, "-n", namespace, "--", "ping", "-c", "2", "-W", "2",
           external_host)
        mh("vm", "exec", VM, "-n", namespace, "--", "ping", "-c", "2", "-W", "2",
           pod_address)
        step("5c. the VM's eth0 is the pod network: masquerade, 10.0.2.2 by DHCP")
        mh("vm", "exec", VM, "-n", namespace, "--", "ip", "route")
        step("5d. a NIC hot-plugged into the running VM, then unplugged")
        mh("vm", "add-nic", VM, "bridge-dev", "-n", namespace)
        time.sleep(2)  # the guest's kernel binds the new PCI device
        mh("vm", "exec", VM, "-n", namespace, "--", "ip", "-o", "link", "show")
        mh("vm", "remove-nic", VM, "net2", "-n", namespace)
        step("5e. live migration to a new launcher pod while the external host pings the VM")
        migrate_under_ping(mh, namespace)
    finally:
        mh("vm", "delete", VM, "-n", namespace, expect_rc=None)


def migrate_under_ping(mh: Callable[..., subprocess.CompletedProcess[str]],
                       namespace: str) -> None:
    address = VM_ADDRESS.split("/")[0]
    print(f"$ ip netns exec {EXTERNAL_NETNS} ping -i 0.05 {address} &", flush=True)
    ping = subprocess.Popen(["ip", "netns", "exec", EXTERNAL_NETNS, "ping", "-n", "-q",
                             "-i", "0.05", address], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1)
        mh("vm", "migrate", VM, "-n", namespace)
        time.sleep(1)
    finally:
        ping.send_signal(signal.SIGINT)
        out, _ = ping.communicate(timeout=10)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    print(f"ping during the migration: {m.group(0) if m else out.strip()}")
    mh("vm", "get", "-n", namespace)
    mh("pod", "get", "-n", namespace)
