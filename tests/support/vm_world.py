"""A private lab for VM tests, driven through the `multihome` command as a user would."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.cli_lab import CLILab, lab_down, lab_up, new_lab

NS = "multus-test"
SUBNET = "10.66.0"
EXTERNAL_HOST = f"{SUBNET}.1"

# argv: HOST PORT; prints what the server sends (the guest's `nc -e echo ...`)
CONNECT_AND_READ = (
    "import socket, sys\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)\n"
    "s.settimeout(10)\n"
    "print(s.recv(200).decode().strip())\n")
# argv: PORT; accepts one connection within 20 s and prints the peer's address
ACCEPT_ONE = (
    "import socket, sys\n"
    "srv = socket.create_server(('0.0.0.0', int(sys.argv[1])))\n"
    "srv.settimeout(20)\n"
    "print('listening', flush=True)\n"
    "conn, peer = srv.accept()\n"
    "print(peer[0], flush=True)\n")


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

    def bridge_ports(self) -> set[str]:
        """The ports of the lab's bridges: where a VM's pod veths would be left over
        (host-wide link lists also show other test runs' links)."""
        out = set()
        for bridge in (self.dev_bridge, self.cluster_bridge):
            listing = subprocess.run(["ip", "-o", "link", "show", "master", bridge],
                                     capture_output=True, text=True, check=False).stdout
            out |= {line.split(":")[1].strip().split("@")[0]
                    for line in listing.splitlines() if ":" in line}
        return out

    def qemu_pid(self, name: str) -> int | None:
        try:
            return int((self.vm_dir(name) / "qemu.pid").read_text().strip())
        except (OSError, ValueError):
            return None


# argv: IFNAME MAC; prints "<ethertype hex>" for each frame from MAC seen on IFNAME,
# "86dd-unspecified" for IPv6 from :: (duplicate address detection of a link coming up)
CAPTURE_FROM = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))\n"
    "s.bind((sys.argv[1], 3))\n"
    "mac = bytes.fromhex(sys.argv[2].replace(':', ''))\n"
    "print('capturing', flush=True)\n"
    "while True:\n"
    "    frame = s.recv(65536)\n"
    "    if frame[6:12] == mac:\n"
    "        kind = frame[12:14].hex()\n"
    "        if kind == '86dd' and frame[22:38] == bytes(16):\n"
    "            kind += '-unspecified'\n"
    "        print(kind, flush=True)\n")


@contextlib.contextmanager
def frames_from(netns: str, ifname: str, mac: str) -> Iterator[Callable[[], list[str]]]:
    """Capture, on `ifname` of namespace `netns`, the frames whose source is `mac`; yields
    a function that stops the capture and returns their ethertypes (hex)."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c",
                             CAPTURE_FROM, ifname, mac],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "capturing"

        def stop() -> list[str]:
            proc.terminate()
            out, _ = proc.communicate(timeout=10)
            return out.split()

        yield stop
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@contextlib.contextmanager
def in_pod_listener(lab: CLILab, pod: str, port: int) -> Iterator[Callable[[], str]]:
    """A TCP listener in lab pod `pod`; yields a function returning the address of the
    first client (waits for it, at most 20 s). The listener is gone afterwards."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", f"mh-{NS}-{pod}", sys.executable, "-c", ACCEPT_ONE,
         str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"

        def accepted() -> str:
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            return out.strip()

        yield accepted
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def process_running(pid: int) -> bool:
    """The process exists and has not exited (a zombie waiting for its reaper has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


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
