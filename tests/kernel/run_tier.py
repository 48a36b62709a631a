#!/usr/bin/env python3
"""Run tests/kernel inside Debian's kernel, booted under qemu by virtme-ng.

This machine's own kernel lacks 802.1Q devices, bridge VLAN filtering, ipvlan and dummy
links, so the tests that need them run in a guest: `linux-image-amd64` booted with the
host's filesystem (read-only 9p root; the repository as a guest-only overlay so pytest can
write), where the same repository and .venv run `pytest tests/kernel`.

    python tests/kernel/run_tier.py [extra pytest args...]

Beside the guest, the runner boots the lab VM (multihome.vm: the same Debian kernel with the
lab's busybox initramfs) on the host, for the VLAN VM test: a VM inside the guest would be
emulation inside emulation (minutes to boot). Its NIC ends in a unix socket that the
guest's qemu connects to as one of the guest's NICs, and its agent's serial port is a
virtio port of the guest (tests/kernel/vm_peer.py is the guest's side).

Prints the guest's pytest output, then `kernel tier: N passed, M skipped, ...` and the
boot / total times. Exit status: 0 when every test passed or skipped; 1 when a test failed,
the guest did not boot, or the tier timed out; 2 when a prerequisite is missing (run
`make install`). A tier that could not boot is a failure, never a skip.

Environment:
    MH_TIER_KERNEL   the /boot/vmlinuz-* to boot (default: the newest Debian one with modules)
    MH_TIER_TIMEOUT  seconds for the whole tier, boot included (default 2400)
    MH_TIER_MEMORY   guest memory (default 2G);  MH_TIER_CPUS  guest CPUs (default 2)
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from multihome.cni.errors import CNIError
from multihome.vm import accel, bindings, qemu
from multihome.vm import guest as vm_guest
from multihome.vm.state import Nic

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
TIER_DIR = "tests/kernel"
# Printed by the guest right before pytest starts: the host timestamps it as "booted".
BOOT_MARKER = "mh-kernel-tier: guest booted"
# Modules the tier's tests rely on. Autoloading works too; loading them up front makes a
# missing module fail loudly here instead of as an obscure netlink error in some test.
GUEST_MODULES = ("8021q", "bridge", "ipvlan", "macvlan", "macvtap", "dummy", "veth", "tun",
                 "nf_tables", "bonding", "vrf", "vxlan")
# After SIGTERM, how long qemu gets before SIGKILL.
KILL_GRACE_S = 5.0
# How the guest finds the host-side VM (read by tests/kernel/vm_peer.py).
VM_NIC_MAC_ENV = "MH_TIER_VM_NIC_MAC"  # the guest's NIC joined to the VM's NIC
VM_AGENT_ENV = "MH_TIER_VM_AGENT"  # the name of the virtio port of the VM's agent
VM_ERROR_ENV = "MH_TIER_VM_ERROR"  # why the runner has no VM for the guest
VM_NIC_MAC = "52:54:00:4d:48:01"
VM_AGENT_PORT = "mh.vmagent"


class TierError(Exception):
    """A prerequisite is missing; the message says how to get it."""


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0

    def line(self) -> str:
        parts = [f"{self.passed} passed", f"{self.skipped} skipped"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.errors:
            parts.append(f"{self.errors} errors")
        return "kernel tier: " + ", ".join(parts)


def _version_key(release: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", release)]


def pick_kernel() -> tuple[Path, str]:
    """(vmlinuz, release): MH_TIER_KERNEL, else the newest Debian kernel whose modules exist."""
    wanted = os.environ.get("MH_TIER_KERNEL")
    candidates = [Path(wanted)] if wanted else sorted(
        Path("/boot").glob("vmlinuz-*"), key=lambda p: _version_key(p.name), reverse=True)
    for image in candidates:
        release = image.name.removeprefix("vmlinuz-")
        if image.is_file() and (Path("/lib/modules") / release / "modules.dep").is_file():
            return image, release
    raise TierError(
        f"no bootable Debian kernel with modules ({wanted or '/boot/vmlinuz-*'}); "
        "run `make install` (installs linux-image-amd64)")


def check_prerequisites() -> None:
    missing = []
    if not (VENV_BIN / "vng").is_file():
        missing.append(f"{VENV_BIN / 'vng'} (PyPI virtme-ng)")
    if not (VENV_BIN / "pytest").is_file():
        missing.append(f"{VENV_BIN / 'pytest'}")
    if not shutil.which("qemu-system-x86_64"):
        missing.append("qemu-system-x86_64 (Debian qemu-system-x86)")
    # virtme-ng builds its initramfs around a static busybox when the kernel needs one.
    if not Path("/bin/busybox").is_file():
        missing.append("/bin/busybox (Debian busybox-static)")
    if os.geteuid() != 0:
        missing.append("root (the guest runs as the invoking user; the tests need root)")
    if missing:
        raise TierError("missing: " + "; ".join(missing) + " — run `make install`")


def guest_script(release: str, junit: Path, timeout_s: int, pytest_args: list[str],
                 env: dict[str, str]) -> str:
    """The shell command the guest runs; its exit status becomes vng's."""
    # Python is ~50x slower in the emulated guest: skip the plugins the tier does not use
    # (hypothesis alone costs tens of seconds to import there).
    pytest = [str(VENV_BIN / "pytest"), TIER_DIR, "-q", "-p", "no:cacheprovider",
              "-p", "no:hypothesispytest", f"--junitxml={junit}", *pytest_args]
    return "; ".join([
        f"export MH_KERNEL_TIER={shlex.quote(release)} PYTHONDONTWRITEBYTECODE=1",
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        *(f"export {k}={shlex.quote(v)}" for k, v in env.items()),
        f"cd {shlex.quote(str(REPO))} || exit 97",
        f"modprobe -a {' '.join(GUEST_MODULES)} || exit 98",
        f"echo {shlex.quote(BOOT_MARKER)}",
        # The guest bounds itself too, so a host runner killed with SIGKILL cannot leave a
        # qemu running forever.
        f"exec timeout -k 10 {timeout_s} {shlex.join(pytest)}",
    ])


def vng_argv(image: Path, work: Path, script: str, qemu_opts: list[str]) -> list[str]:
    opts = [f"--qemu-opts={shlex.join(qemu_opts)}"] if qemu_opts else []
    return [
        str(VENV_BIN / "vng"), "--disable-kvm",  # KVM fails on these hosts; TCG is reliable
        "--run", str(image),
        "--cpus", os.environ.get("MH_TIER_CPUS", "2"),
        "--memory", os.environ.get("MH_TIER_MEMORY", "2G"),
        # r/w in the guest, untouched on the host (pytest tmp files, .pyc, .hypothesis)
        f"--overlay-rwdir={REPO}",
        f"--rwdir={work}",  # the only host directory the guest writes: the JUnit report
        "--cwd", str(REPO),
        *opts,
        "--exec", script,
    ]


class HostVM:
    """The lab VM booted on the host for the guest's VLAN VM test; `stop` is always safe."""

    def __init__(self, work: Path) -> None:
        self.dir = work / "vm"
        self.qemu_opts: list[str] = []
        self.env: dict[str, str] = {}
        try:
            self.pid = self._start(work)
        except (CNIError, OSError) as exc:  # VMError is a CNIError
            self.stop()
            self.env = {VM_ERROR_ENV: f"the runner could not boot the VM: {exc}"}
            print(f"kernel tier: {self.env[VM_ERROR_ENV]}", file=sys.stderr, flush=True)
            return
        print(f"kernel tier: VM for the VLAN test started on the host (qemu pid {self.pid})",
              flush=True)

    def _start(self, work: Path) -> int:
        self.dir.mkdir()
        the_guest = vm_guest.prepare(str(work))
        nic = Nic(ifname="net1", network="tier", binding="bridge", mac=bindings.random_mac(),
                  guest_ifname="eth0")
        nic_sock, agent_sock = self.dir / "nic.sock", self.dir / qemu.AGENT_SOCK
        pid = qemu.start("tier-vm", str(self.dir), the_guest,
                         accel.choose(the_guest.kernel, vm_guest.cache_dir(str(work))), 256,
                         [qemu.NicStream(nic, str(nic_sock))])
        # The guest's qemu connects to both sockets as a client when it starts.
        self.qemu_opts = [
            "-netdev", f"stream,id=mhvm,server=off,addr.type=unix,addr.path={nic_sock}",
            "-device", f"virtio-net-pci,netdev=mhvm,mac={VM_NIC_MAC}",
            "-chardev", f"socket,id=mhagent,path={agent_sock}",
            "-device", "virtio-serial-pci,id=mhserial",
            "-device", f"virtserialport,bus=mhserial.0,chardev=mhagent,name={VM_AGENT_PORT}",
        ]
        self.env = {VM_NIC_MAC_ENV: VM_NIC_MAC, VM_AGENT_ENV: VM_AGENT_PORT}
        return pid

    def stop(self) -> None:
        if self.dir.is_dir():
            qemu.stop(str(self.dir))


def read_counts(junit: Path) -> Counts | None:
    if not junit.is_file():
        return None
    try:
        root = ET.parse(junit).getroot()
    except ET.ParseError:
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = Counts()
    for suite in suites:
        total = int(suite.get("tests", 0))
        counts.failed += int(suite.get("failures", 0))
        counts.errors += int(suite.get("errors", 0))
        counts.skipped += int(suite.get("skipped", 0))
        counts.passed += total - int(suite.get("failures", 0)) - int(
            suite.get("errors", 0)) - int(suite.get("skipped", 0))
    return counts


class Guest:
    """One vng/qemu process group, always reaped (normal end, timeout, Ctrl-C, SIGTERM)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.booted_at: float | None = None
        self.first_result_at: float | None = None
        # Own session: the whole tree (vng, virtme-run, qemu) can be killed as a group, and
        # qemu's stdio chardev never touches the caller's terminal.
        # qemu reopens /proc/self/fd/1 and /2 for the guest's output, which truncates them
        # when they are files (`run_tier.py > log`): give it a pipe for both.
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._relay, daemon=True)
        self._reader.start()

    def _relay(self) -> None:
        # Raw chunks, not lines: pytest -q prints each test's "." without a newline, and
        # the first one after the marker is the "first test done" time.
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        seen = b""
        while chunk := os.read(fd, 65536):
            now = time.monotonic()
            if self.booted_at is None:
                seen = (seen + chunk)[-4096:]
                if BOOT_MARKER.encode() + b"\n" in seen:
                    self.booted_at = now
                    chunk_after = seen.split(BOOT_MARKER.encode() + b"\n", 1)[1]
                    if chunk_after.strip():
                        self.first_result_at = now
            elif self.first_result_at is None and chunk.strip():
                self.first_result_at = now
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()

    def wait(self, timeout_s: float) -> int:
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        for sig, grace in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
            # vng itself is gone; make sure nothing else of the group (qemu) survived it.
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
        self._reader.join(timeout=5)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(pytest_args: list[str]) -> int:
    try:
        check_prerequisites()
        image, release = pick_kernel()
    except TierError as exc:
        print(f"kernel tier: cannot run: {exc}", file=sys.stderr)
        return 2
    timeout_s = int(os.environ.get("MH_TIER_TIMEOUT", "2400"))
    # SIGTERM/SIGHUP (CI cancelling, terminal closed) clean up exactly like Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    # Everything vng writes (its exit-status file) and the guest's report live here.
    work = Path(tempfile.mkdtemp(prefix="mh-kernel-tier-"))
    junit = work / "junit.xml"
    env = dict(os.environ, TMPDIR=str(work),
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}")
    guest: Guest | None = None
    code: int | None = None
    stopped = ""  # why the guest was killed, if it was
    host_vm: HostVM | None = None
    try:
        host_vm = HostVM(work)
        script = guest_script(release, junit, max(timeout_s - 60, 60), pytest_args,
                              host_vm.env)
        print(f"kernel tier: booting {image} under qemu (TCG) ...", flush=True)
        guest = Guest(vng_argv(image, work, script, host_vm.qemu_opts), env)
        code = guest.wait(timeout_s)
    except subprocess.TimeoutExpired:
        stopped = f"timed out after {timeout_s} s (MH_TIER_TIMEOUT)"
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        if guest is not None and guest.proc.poll() is None:
            guest.kill()
        if host_vm is not None:
            host_vm.stop()
        counts = read_counts(junit)
        shutil.rmtree(work, ignore_errors=True)
    if stopped:
        print(f"kernel tier: FAILED: {stopped}", file=sys.stderr)
        return 1
    total = time.monotonic() - guest.started if guest else 0.0
    booted = guest.booted_at - guest.started if guest and guest.booted_at else None
    if booted is None:
        print(f"kernel tier: FAILED: the guest did not boot (vng exit {code}, {total:.0f} s)",
              file=sys.stderr)
        return 1
    if counts is None:
        print(f"kernel tier: FAILED: no test report from the guest (exit {code})",
              file=sys.stderr)
        return 1
    first = (f"first test done {guest.first_result_at - guest.started:.1f} s, "
             if guest and guest.first_result_at else "")
    print(f"{counts.line()} (boot {booted:.1f} s, {first}total {total:.1f} s)", flush=True)
    if code != 0 or counts.failed or counts.errors:
        # pytest exit 5 (no tests collected) also lands here: an empty tier is a failure.
        print(f"kernel tier: FAILED (guest exit {code})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
