"""The demo's VM step: a real VM on bridge-dev pings the external host and a pod.

Called by lab_demo.py while the lab and its pods are up; it removes its VM itself.
The VM's NIC takes the MAC the CNI plugin gave the launcher pod's net1 (bridge
binding), so the seed NAD's macspoofchk lets its traffic through.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

VM = "vm-demo"
VM_ADDRESS = "10.250.0.20/24"


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
    finally:
        mh("vm", "delete", VM, "-n", namespace, expect_rc=None)
