"""What the lab keeps of a VM: one directory with vm.json, the qemu pid file and sockets.

The record is written before qemu starts, so `vm delete` can undo a half-made VM
from it alone (bindings carry what they changed: the pod interface's MAC and addresses).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from multihome.paths import write_file_atomic
from multihome.vm.errors import VMError

VM_FILE = "vm.json"
LAUNCHER_PREFIX = "virt-launcher-"


def pod_name(vm: str) -> str:
    """The launcher pod of VM `vm` (KubeVirt says virt-launcher-<vm>-<hash>)."""
    return f"{LAUNCHER_PREFIX}{vm}"


def vm_of_pod(pod: str) -> str | None:
    """The VM whose launcher pod `pod` would be (the inverse of pod_name), else None."""
    vm = pod.removeprefix(LAUNCHER_PREFIX)
    return vm if vm != pod and vm else None


@dataclass
class Nic:
    ifname: str  # the pod interface (netN) the NIC is joined to
    network: str  # "ns/nad"
    binding: str  # "bridge" or "macvtap"
    mac: str  # the VM NIC's MAC (netN's MAC as the CNI plugin made it)
    addresses: list[str] = field(default_factory=list)  # handed to the guest
    gateway: str = ""
    guest_ifname: str = ""  # eth0, eth1… in PCI order
    # bridge binding only: what it made and what it changed in the pod
    bridge: str = ""
    tap: str = ""
    pod_mac: str = ""  # netN's new MAC
    pod_addresses: list[str] = field(default_factory=list)  # moved from netN to the guest


@dataclass
class VMRecord:
    name: str
    namespace: str
    memory: int
    networks: str
    nics: list[Nic] = field(default_factory=list)
    accel: str = ""
    created: float = field(default_factory=time.time)
    boot_seconds: float = 0.0

    @property
    def pod(self) -> str:
        return pod_name(self.name)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VMRecord:
        nics = [Nic(**n) for n in data.get("nics", [])]
        known = {f.name for f in dataclasses.fields(cls)} - {"nics"}
        return cls(**{k: v for k, v in data.items() if k in known}, nics=nics)


def vms_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "vms")


def vm_dir(state_dir: str, namespace: str, name: str) -> str:
    return os.path.join(vms_dir(state_dir), f"{namespace}_{name}")


def save(state_dir: str, rec: VMRecord) -> None:
    path = vm_dir(state_dir, rec.namespace, rec.name)
    try:
        os.makedirs(path, exist_ok=True)
        write_file_atomic(os.path.join(path, VM_FILE), json.dumps(rec.to_json(), indent=2),
                          0o600)
    except OSError as e:
        raise VMError("state", f"cannot write the VM record in {path}", str(e)) from e


def load(state_dir: str, namespace: str, name: str) -> VMRecord | None:
    file = os.path.join(vm_dir(state_dir, namespace, name), VM_FILE)
    try:
        with open(file) as f:
            return VMRecord.from_json(json.load(f))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as e:
        raise VMError("state", f"cannot read the VM record {file}", str(e)) from e


def load_all(state_dir: str, namespace: str | None) -> list[VMRecord]:
    try:
        entries = sorted(os.listdir(vms_dir(state_dir)))
    except FileNotFoundError:
        return []
    out = []
    for entry in entries:
        ns, _, name = entry.partition("_")
        if namespace is not None and ns != namespace:
            continue
        rec = load(state_dir, ns, name)
        if rec is not None:
            out.append(rec)
    return out


def remove(state_dir: str, namespace: str, name: str) -> None:
    shutil.rmtree(vm_dir(state_dir, namespace, name), ignore_errors=True)
