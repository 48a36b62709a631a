"""The qemu process of a VM: its command line, daemonized start, liveness and stop.

qemu runs in the host namespace; each NIC reaches it as an already-open fd (a tap made
in the pod, or a macvtap's character device), so qemu needs no rights in the pod. A NIC
can instead end in a unix stream socket that another qemu connects to (`NicStream`): the
kernel tier joins a VM booted here to the pod network inside its own guest that way.
Serial ports: ttyS0 is the console (`console.sock`, mirrored to `console.log`), ttyS1
the command agent (`agent.sock`); `qmp.sock` is qemu's monitor (vm.qmp).
Each NIC has a fixed netdev id and PCI slot (Nic.qemu_id, Nic.slot): a migration target
must have the same devices in the same places, and a hot-plugged NIC takes a free slot.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from multihome.vm.accel import QEMU, Accel
from multihome.vm.errors import VMError
from multihome.vm.guest import Guest
from multihome.vm.qmp import QMP_SOCK
from multihome.vm.state import Nic

PID_FILE = "qemu.pid"
LOG_FILE = "qemu.log"
CONSOLE_SOCK = "console.sock"
CONSOLE_LOG = "console.log"
AGENT_SOCK = "agent.sock"
# a migration target's qemu keeps its files in <vm dir>/target-<n> until switch-over; a
# new name each time, as qemu removes its sockets and pid file by their first path on exit
TARGET_DIR = "target"


def target_dir(vm_dir: str, migration: int) -> str:
    return os.path.join(vm_dir, f"{TARGET_DIR}-{migration}")
SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with the terminating NUL


@dataclass(frozen=True)
class NicFd:
    nic: Nic
    fd: int

    def netdev(self, netdev_id: str) -> str:
        return f"tap,id={netdev_id},fd={self.fd}"


@dataclass(frozen=True)
class NicStream:
    """qemu listens on `path`; the frames go to whoever connects (another qemu's NIC)."""

    nic: Nic
    path: str

    def netdev(self, netdev_id: str) -> str:
        return f"stream,id={netdev_id},server=on,addr.type=unix,addr.path={self.path}"


NicBackend = NicFd | NicStream


def _fds(nics: Sequence[NicBackend]) -> list[int]:
    return [n.fd for n in nics if isinstance(n, NicFd)]


FIRST_SLOT = 3


def netdev_id(nic: Nic, index: int) -> str:
    return nic.qemu_id or f"nic{index}"


def device_id(nic: Nic, index: int) -> str:
    return f"{netdev_id(nic, index)}-dev"


def slot(nic: Nic, index: int) -> int:
    return nic.slot or FIRST_SLOT + index


def device_args(nic: Nic, index: int) -> str:
    """The `-device` (or device_add) arguments of a NIC."""
    return (f"virtio-net-pci,netdev={netdev_id(nic, index)},id={device_id(nic, index)},"
            f"mac={nic.mac},addr={slot(nic, index):#x}")


def _ip_param(nic: Nic) -> str:
    """The kernel's `ip=` syntax: client::gateway:netmask::device:autoconf (off|dhcp)."""
    if nic.dhcp:
        return f"ip=:::::{nic.guest_ifname}:dhcp"
    if not nic.addresses:
        return f"ip=:::::{nic.guest_ifname}:off"
    iface = ipaddress.ip_interface(nic.addresses[0])
    return (f"ip={iface.ip}::{nic.gateway}:{iface.network.netmask}::"
            f"{nic.guest_ifname}:off")


def kernel_cmdline(name: str, nics: list[Nic]) -> str:
    parts = ["console=ttyS0", "quiet", "loglevel=3", "panic=-1", f"mh.name={name}"]
    parts += [_ip_param(n) for n in nics if n.guest_ifname]
    return " ".join(parts)


def command(name: str, vm_dir: str, guest: Guest, accel: Accel, memory: int,
            nics: Sequence[NicBackend], incoming: str = "") -> list[str]:
    def sock(fname: str) -> str:
        return os.path.join(vm_dir, fname)

    cmd = [QEMU, "-name", name, *accel.qemu_args(), "-m", str(memory), "-smp", "1",
           "-nodefaults", "-display", "none", "-no-reboot",
           "-kernel", guest.kernel, "-initrd", guest.initramfs,
           "-append", kernel_cmdline(name, [n.nic for n in nics]),
           "-chardev", f"socket,id=console,path={sock(CONSOLE_SOCK)},server=on,wait=off,"
                       f"logfile={sock(CONSOLE_LOG)}",
           "-serial", "chardev:console",
           "-chardev", f"socket,id=agent,path={sock(AGENT_SOCK)},server=on,wait=off",
           "-serial", "chardev:agent",
           "-qmp", f"unix:{sock(QMP_SOCK)},server=on,wait=off",
           "-daemonize", "-pidfile", sock(PID_FILE)]
    for i, n in enumerate(nics):
        # fixed PCI slots keep eth0, eth1… in the order of the networks
        cmd += ["-netdev", n.netdev(netdev_id(n.nic, i)), "-device", device_args(n.nic, i)]
    if incoming:
        # a migration target: it waits for the source's state on this unix socket and
        # stays paused after it (-S) until the switch-over says `cont`
        cmd += ["-incoming", f"unix:{incoming}", "-S"]
    return cmd


def start(name: str, vm_dir: str, guest: Guest, accel: Accel, memory: int,
          nics: Sequence[NicBackend], incoming: str = "") -> int:
    """Start qemu daemonized; returns its pid. The fds are inherited by qemu."""
    longest = os.path.join(vm_dir, CONSOLE_SOCK)
    if len(longest.encode()) > SUN_PATH_MAX:
        raise VMError("qemu", f"the VM's socket path {longest} is longer than a unix socket "
                      f"allows ({SUN_PATH_MAX} bytes)", "use a shorter MULTIHOME_STATE_DIR")
    cmd = command(name, vm_dir, guest, accel, memory, nics, incoming)
    with open(os.path.join(vm_dir, LOG_FILE), "w") as log:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT, pass_fds=_fds(nics),
                              timeout=60, check=False)
    if proc.returncode != 0:
        raise VMError("qemu", f"qemu exited with code {proc.returncode}",
                      log_tail(vm_dir, LOG_FILE))
    pid = read_pid(vm_dir)
    if pid is None:
        raise VMError("qemu", f"qemu started but wrote no pid file in {vm_dir}")
    return pid


def read_pid(vm_dir: str) -> int | None:
    try:
        with open(os.path.join(vm_dir, PID_FILE)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _is_our_qemu(pid: int, vm_dir: str) -> bool:
    """The pid is alive and is a qemu of this VM (not a recycled pid): its pid file is in
    the VM's directory (or the directory of a migration target under it)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return False
    own = os.path.join(vm_dir, PID_FILE).encode()
    targets = os.path.join(vm_dir, f"{TARGET_DIR}-").encode()
    return own in args or any(a.startswith(targets) and a.endswith(b"/" + PID_FILE.encode())
                              and a.count(b"/") == own.count(b"/") + 1 for a in args)


def running(vm_dir: str) -> bool:
    pid = read_pid(vm_dir)
    return pid is not None and _is_our_qemu(pid, vm_dir)


def stop(vm_dir: str, grace: float = 3.0) -> bool:
    """SIGTERM, then SIGKILL after `grace` seconds; True when a qemu was running."""
    pid = read_pid(vm_dir)
    if pid is None or not _is_our_qemu(pid, vm_dir):
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _is_our_qemu(pid, vm_dir):
                return True
            time.sleep(0.05)
    return True


def log_tail(vm_dir: str, fname: str, lines: int = 8) -> str:
    try:
        with open(os.path.join(vm_dir, fname), errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""
