"""KVM when it works, TCG otherwise, decided by trying once and remembered in the state dir.

On the lab machines KVM with `-cpu host` dies at once ("failed to set MSR 0x10a") and
other CPU models hang the guest kernel, so the probe is: boot the guest kernel with
KVM and `-cpu host`; if qemu exits within a couple of seconds, KVM is not usable.
$MULTIHOME_VM_ACCEL=kvm|tcg skips the probe.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass

ACCEL_ENV = "MULTIHOME_VM_ACCEL"
QEMU = "qemu-system-x86_64"
PROBE_SECONDS = 2.0
CACHE_FILE = "accel.json"


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" or "tcg"
    reason: str

    def qemu_args(self) -> list[str]:
        return ["-accel", "kvm", "-cpu", "host"] if self.name == "kvm" else ["-accel", "tcg"]


def _probe(kernel: str) -> Accel:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accel("tcg", "/dev/kvm is not available")
    cmd = [QEMU, *Accel("kvm", "").qemu_args(), "-m", "128", "-nodefaults", "-display",
           "none", "-no-reboot", "-kernel", kernel, "-append", "console=ttyS0 panic=-1"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=PROBE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return Accel("kvm", f"KVM with -cpu host ran for {PROBE_SECONDS:.0f} s")
    first = (err.strip().splitlines() or [f"exit code {proc.returncode}"])[0]
    return Accel("tcg", f"KVM with -cpu host failed at once ({first})")


def choose(kernel: str, cache_dir: str) -> Accel:
    forced = os.environ.get(ACCEL_ENV, "")
    if forced in ("kvm", "tcg"):
        return Accel(forced, f"set by {ACCEL_ENV}")
    path = os.path.join(cache_dir, CACHE_FILE)
    try:
        with open(path) as f:
            data = json.load(f)
        if data.get("kernel") == kernel:
            return Accel(str(data["name"]), str(data["reason"]))
    except (OSError, ValueError, KeyError):
        pass
    accel = _probe(kernel)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        with open(path, "w") as f:
            json.dump({"kernel": kernel, "name": accel.name, "reason": accel.reason}, f)
    except OSError:
        pass  # only a cache
    return accel
