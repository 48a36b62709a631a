"""The guest's initramfs and kernel command line, without booting anything."""

from __future__ import annotations

import glob
import lzma
import os
import stat
from pathlib import Path

import pytest

from multihome.vm import cpio, guest, qemu
from multihome.vm.errors import VMError
from multihome.vm.state import Nic


def _read_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """path -> (mode, data, rdev): just enough of a cpio reader to check the writer."""
    out: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    pos = 0
    while True:
        head = data[pos:pos + 110]
        assert head[:6] == b"070701"
        fields = [int(head[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = fields[1], fields[6], fields[9], fields[10], \
            fields[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        body = data[pos:pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body, (rmaj, rmin))


def test_cpio_writer_round_trip() -> None:
    data = cpio.archive([cpio.directory("bin"), cpio.file("init", b"#!x\n", 0o755),
                         cpio.symlink("bin/sh", "busybox"), cpio.chardev("dev/console", 5, 1)])
    entries = _read_newc(data)
    assert stat.S_ISDIR(entries["bin"][0])
    assert entries["init"][1] == b"#!x\n" and entries["init"][0] & 0o777 == 0o755
    assert stat.S_ISLNK(entries["bin/sh"][0]) and entries["bin/sh"][1] == b"busybox"
    assert stat.S_ISCHR(entries["dev/console"][0]) and entries["dev/console"][2] == (5, 1)


@pytest.mark.skipif(not glob.glob("/boot/vmlinuz-*"), reason="no /boot/vmlinuz-* "
                    "(Debian: linux-image-amd64)")
def test_initramfs_has_busybox_init_and_nic_modules_in_dependency_order(
        tmp_path: Path) -> None:
    try:
        built = guest.prepare(str(tmp_path))
    except VMError as e:
        pytest.skip(f"cannot build the guest here: {e}")
    entries = _read_newc(Path(built.initramfs).read_bytes())
    assert {"init", "bin/busybox", "dev/console", "lib/mod/order"} <= set(entries)
    order = entries["lib/mod/order"][1].decode().split()
    if "virtio_net.ko" in order:  # modules, not built in
        assert order.index("failover.ko") < order.index("net_failover.ko") \
            < order.index("virtio_net.ko")
        assert order.index("virtio.ko") < order.index("virtio_pci.ko")
        assert all(f"lib/mod/{m}" in entries for m in order)
    # cached: a second prepare reuses the file
    mtime = os.stat(built.initramfs).st_mtime_ns
    assert guest.prepare(str(tmp_path)).initramfs == built.initramfs
    assert os.stat(built.initramfs).st_mtime_ns == mtime


def test_compressed_modules_are_unpacked(tmp_path: Path) -> None:
    path = tmp_path / "m.ko.xz"
    path.write_bytes(lzma.compress(b"\x7fELF module"))
    assert guest._read_module(str(path)) == b"\x7fELF module"


def test_missing_kernel_is_a_guest_step_error(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv(guest.KERNEL_ENV, str(tmp_path / "vmlinuz-x"))
    with pytest.raises(VMError) as err:
        guest.prepare(str(tmp_path))
    assert err.value.step == "guest" and "linux-image-amd64" in str(err.value)


def test_kernel_cmdline_carries_one_ip_per_nic() -> None:
    nics = [Nic("net1", "ns/a", "bridge", "02:00:00:00:00:01", ["10.1.0.5/24"], "10.1.0.1",
                "eth0"),
            Nic("net2", "ns/b", "macvtap", "02:00:00:00:00:02", [], "", "eth1")]
    line = qemu.kernel_cmdline("vm1", nics)
    assert "ip=10.1.0.5::10.1.0.1:255.255.255.0::eth0:off" in line.split()
    assert "ip=:::::eth1:off" in line.split()
    assert "console=ttyS0" in line and "mh.name=vm1" in line


def test_nics_are_tap_fds_or_a_listening_stream_socket_in_network_order() -> None:
    from multihome.vm.accel import Accel

    tap = Nic("net1", "ns/a", "bridge", "02:00:00:00:00:01", [], "", "eth0")
    wire = Nic("net2", "ns/b", "bridge", "02:00:00:00:00:02", [], "", "eth1")
    the_guest = guest.Guest("/boot/vmlinuz-x", "/tmp/initrd", "x")
    cmd = qemu.command("vm1", "/run/vm1", the_guest, Accel("tcg", ""), 256,
                       [qemu.NicFd(tap, 7), qemu.NicStream(wire, "/run/vm1/nic.sock")])
    netdevs = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-netdev"]
    devices = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-device"]
    assert netdevs == ["tap,id=nic0,fd=7",
                       "stream,id=nic1,server=on,addr.type=unix,addr.path=/run/vm1/nic.sock"]
    assert devices == ["virtio-net-pci,netdev=nic0,id=nic0-dev,mac=02:00:00:00:00:01,addr=0x3",
                       "virtio-net-pci,netdev=nic1,id=nic1-dev,mac=02:00:00:00:00:02,addr=0x4"]
    assert "-qmp" in cmd and "-incoming" not in cmd


def test_accelerator_is_probed_once_and_remembered(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from multihome.vm import accel

    if shutil.which(accel.QEMU) is None or not glob.glob("/boot/vmlinuz-*"):
        pytest.skip("needs qemu-system-x86_64 and a /boot/vmlinuz-* kernel")
    kernel, _ = guest.find_kernel()
    chosen = accel.choose(kernel, str(tmp_path))
    assert chosen.name in ("kvm", "tcg") and chosen.reason
    assert chosen.qemu_args()[:2] == ["-accel", chosen.name]
    assert (tmp_path / accel.CACHE_FILE).exists()
    assert accel.choose(kernel, str(tmp_path)) == chosen
    monkeypatch.setenv(accel.ACCEL_ENV, "tcg")
    assert accel.choose(kernel, str(tmp_path)) == accel.Accel("tcg", "set by "
                                                              f"{accel.ACCEL_ENV}")
