"""Reading PCI and netdev facts from sysfs, under a root tests can point elsewhere.

The root is the `sysfsRoot` config key, else the MH_SYSFS_ROOT environment variable,
else /sys. Only reads: binding drivers is the device plugin's job, not ours.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from multihome.cni.errors import CNIError, InvalidConfig

DEFAULT_ROOT = "/sys"
ENV_ROOT = "MH_SYSFS_ROOT"

_PCI_ADDR = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]\Z")
_VIRTFN = re.compile(r"^virtfn(\d+)\Z")


def root(configured: str = "") -> Path:
    return Path(configured or os.environ.get(ENV_ROOT) or DEFAULT_ROOT)


def pci_dir(sys_root: Path, pci: str) -> Path:
    """The device directory of PCI address `pci` (domain:bus:slot.function)."""
    if not _PCI_ADDR.match(pci):
        raise InvalidConfig(f"invalid PCI address {pci!r}: expected the form 0000:03:00.1")
    path = sys_root / "bus" / "pci" / "devices" / pci
    if not path.exists():
        raise InvalidConfig(f"PCI device {pci} not found under {path.parent}")
    return path


def netdevs(device_dir: Path) -> list[str]:
    """Names under `<device>/net/`; empty when the device has no kernel netdev (DPDK)."""
    net = device_dir / "net"
    try:
        return sorted(os.listdir(net))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise CNIError(f"cannot list {net}", str(e)) from e


def driver(device_dir: Path) -> str:
    link = device_dir / "driver"
    return os.path.basename(os.readlink(link)) if link.is_symlink() else ""


@dataclass(frozen=True)
class VirtualFunction:
    pci: str
    pf_pci: str
    pf_netdev: str
    index: int  # the N of the PF's virtfnN link
    netdev: str  # "" when the VF is bound to a userspace (DPDK) driver
    driver: str


def virtual_function(sys_root: Path, pci: str) -> VirtualFunction:
    """Resolve a VF: its PF through `physfn`, its index through the PF's `virtfn*` links."""
    vf_dir = pci_dir(sys_root, pci)
    physfn = vf_dir / "physfn"
    if not physfn.exists():
        raise InvalidConfig(f"PCI device {pci} is not an SR-IOV virtual function "
                            f"(no {physfn})")
    pf_dir = physfn.resolve()
    index = -1
    for entry in os.listdir(pf_dir):
        m = _VIRTFN.match(entry)
        if m and (pf_dir / entry).resolve() == vf_dir.resolve():
            index = int(m.group(1))
            break
    if index < 0:
        raise CNIError(f"VF {pci} is not listed among the virtfn* links of its PF "
                       f"{pf_dir.name}")
    pf_names = netdevs(pf_dir)
    if not pf_names:
        raise CNIError(f"the PF {pf_dir.name} of VF {pci} has no network device")
    vf_names = netdevs(vf_dir)
    return VirtualFunction(pci=pci, pf_pci=pf_dir.name, pf_netdev=pf_names[0], index=index,
                           netdev=vf_names[0] if vf_names else "", driver=driver(vf_dir))
