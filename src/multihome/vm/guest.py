"""The lab's guest: the host's Debian kernel and an initramfs built here, never downloaded.

The initramfs holds busybox-static, the kernel's own virtio-pci/virtio-net modules (with
their dependencies from modules.dep, `.ko.xz` unpacked with lzma) and /init. It is cached
under a key of its inputs, so the build (well under a second) happens once per kernel.
"""

from __future__ import annotations

import glob
import hashlib
import lzma
import os
from dataclasses import dataclass

from multihome.vm import cpio
from multihome.vm.errors import VMError
from multihome.vm.init_script import INIT

KERNEL_ENV = "MULTIHOME_VM_KERNEL"
CACHE_ENV = "MULTIHOME_VM_CACHE"
# what a NIC needs; their dependencies come from modules.dep
WANTED_MODULES = ("virtio_pci", "virtio_net")
STEP = "guest"


@dataclass(frozen=True)
class Guest:
    kernel: str
    initramfs: str
    version: str


def find_kernel() -> tuple[str, str]:
    """(path, version) of the guest kernel: $MULTIHOME_VM_KERNEL or the newest /boot one."""
    path = os.environ.get(KERNEL_ENV, "")
    if not path:
        found = sorted(glob.glob("/boot/vmlinuz-*"))
        if not found:
            raise VMError(STEP, "no guest kernel: /boot/vmlinuz-* is missing",
                          "install linux-image-amd64 or set MULTIHOME_VM_KERNEL")
        path = found[-1]
    if not os.path.isfile(path):
        raise VMError(STEP, f"guest kernel {path} does not exist",
                      "install linux-image-amd64 or point MULTIHOME_VM_KERNEL at a vmlinuz")
    version = os.path.basename(path).removeprefix("vmlinuz-")
    return path, version


def find_busybox() -> str:
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.isfile(path):
            return path
    raise VMError(STEP, "busybox is missing", "install busybox-static")


def _module_order(moddir: str) -> list[str]:
    """Module paths relative to `moddir`, dependencies first, for WANTED_MODULES."""
    try:
        with open(os.path.join(moddir, "modules.dep")) as f:
            deps: dict[str, list[str]] = {}
            for line in f:
                mod, _, rest = line.partition(":")
                deps[mod] = rest.split()
    except OSError as e:
        raise VMError(STEP, f"cannot read {moddir}/modules.dep",
                      "install the modules of the guest kernel (linux-image-amd64)") from e
    by_name = {os.path.basename(m).split(".ko")[0].replace("-", "_"): m for m in deps}
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for dep in deps.get(mod, []):
            visit(dep)
        order.append(mod)

    for name in WANTED_MODULES:
        if name in by_name:  # absent: built into this kernel
            visit(by_name[name])
    return order


def _read_module(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    return lzma.decompress(data) if path.endswith(".xz") else data


def _entries(version: str, busybox: str) -> list[cpio.Entry]:
    moddir = f"/lib/modules/{version}"
    entries = [cpio.directory(d) for d in ("bin", "dev", "proc", "sys", "tmp", "lib",
                                           "lib/mod", "sbin", "run")]
    entries.append(cpio.chardev("dev/console", 5, 1))
    with open(busybox, "rb") as f:
        entries.append(cpio.file("bin/busybox", f.read(), 0o755))
    entries.append(cpio.symlink("bin/sh", "busybox"))
    names = []
    for rel in _module_order(moddir):
        name = os.path.basename(rel).split(".ko")[0] + ".ko"
        entries.append(cpio.file(f"lib/mod/{name}", _read_module(os.path.join(moddir, rel))))
        names.append(name)
    entries.append(cpio.file("lib/mod/order", ("\n".join(names) + "\n").encode()))
    entries.append(cpio.file("init", INIT.encode(), 0o755))
    return entries


def cache_dir(state_dir: str) -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(state_dir, "vm-cache")


def _key(kernel: str, busybox: str) -> str:
    h = hashlib.sha256(INIT.encode())
    for path in (kernel, busybox):
        st = os.stat(path)
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def prepare(state_dir: str) -> Guest:
    """The kernel and a (cached) initramfs for it."""
    kernel, version = find_kernel()
    busybox = find_busybox()
    cache = cache_dir(state_dir)
    target = os.path.join(cache, f"initramfs-{version}-{_key(kernel, busybox)}.cpio")
    if not os.path.exists(target):
        try:
            os.makedirs(cache, exist_ok=True)
            tmp = f"{target}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(cpio.archive(_entries(version, busybox)))
            os.replace(tmp, target)
        except OSError as e:
            raise VMError(STEP, f"cannot write the initramfs in {cache}", str(e)) from e
    return Guest(kernel, target, version)
