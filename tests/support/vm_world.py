"""A private lab for VM tests, driven through the `multihome` command as a user would."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.cli_lab import CLILab, lab_down, lab_up, new_lab

NS = "multus-test"
SUBNET = "10.66.0"
EXTERNAL_HOST = f"{SUBNET}.1"


def skip_without_vm_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create namespaces, bridges and taps")
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (Debian: qemu-system-x86)")
    if not glob.glob("/boot/vmlinuz-*") and not os.environ.get("MULTIHOME_VM_KERNEL"):
        pytest.skip("no guest kernel in /boot (Debian: linux-image-amd64)")
    if not any(os.path.isfile(p) for p in ("/bin/busybox", "/usr/bin/busybox")):
        pytest.skip("busybox is not installed (Debian: busybox-static)")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("/dev/net/tun is missing: no tap devices on this host")


class VMLab(CLILab):
    def apply_nad(self, name: str, config: dict[str, object]) -> None:
        self.ok("apply", "-f", self.nad_file(name, config), "-n", NS)

    def in_external(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.external, *argv],
                              capture_output=True, text=True, timeout=30)

    def vm_dir(self, name: str) -> Path:
        return self.state / "vms" / f"{NS}_{name}"

    def qemu_pid(self, name: str) -> int | None:
        try:
            return int((self.vm_dir(name) / "qemu.pid").read_text().strip())
        except (OSError, ValueError):
            return None


def qemu_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return b"qemu" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def up(tmp: Path) -> VMLab:
    lab = new_lab(VMLab, tmp, "mv")
    lab_up(lab, f"{EXTERNAL_HOST}/24", "10.69.0.0/24")
    return lab


def down(lab: VMLab) -> None:
    """Remove every VM (killing qemu), pod and the world, whatever state they are in."""
    for pidfile in lab.state.glob("vms/*/qemu.pid"):
        vm = pidfile.parent.name.partition("_")[2]
        lab.mh("vm", "delete", vm, "-n", pidfile.parent.name.partition("_")[0])
        pid = lab.qemu_pid(vm)
        if qemu_alive(pid):
            assert pid is not None
            os.kill(pid, 9)
    lab_down(lab)
