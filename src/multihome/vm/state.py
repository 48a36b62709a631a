"""What the lab keeps of a VM: one directory with vm.json, the qemu pid file and sockets.

The record is written before qemu starts, so `vm delete` can undo a half-made VM
from it alone (bindings carry what they changed: the pod interface's MAC and addresses).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from multihome import paths
from multihome.paths import write_file_atomic
from multihome.vm.errors import VMError

VM_FILE = "vm.json"
LOCK_FILE = ".lock"
LOCK_WAIT = 30.0  # seconds another change of the same VM may hold it
LAUNCHER_PREFIX = "virt-launcher-"


def pod_name(vm: str) -> str:
    """The launcher pod of VM `vm` (KubeVirt says virt-launcher-<vm>-<hash>)."""
    return f"{LAUNCHER_PREFIX}{vm}"


POD_NETWORK = "pod"  # Nic.network of the pod network's NIC (KubeVirt's `pod: {}`)
LINK_STATES = ("up", "down")


@dataclass
class Nic:
    ifname: str  # the pod interface (eth0 or netN) the NIC is joined to
    network: str  # "ns/nad", or POD_NETWORK
    binding: str  # "bridge", "macvtap" or "masquerade"
    mac: str  # the VM NIC's MAC (netN's MAC as the CNI plugin made it)
    addresses: list[str] = field(default_factory=list)  # handed to the guest
    gateway: str = ""
    guest_ifname: str = ""  # eth0, eth1… in PCI order
    # bridge and masquerade bindings: what they made and what they changed in the pod
    bridge: str = ""
    tap: str = ""
    pod_mac: str = ""  # netN's new MAC
    pod_addresses: list[str] = field(default_factory=list)  # moved from netN to the guest
    dhcp: bool = False  # the guest asks the binding for its address (masquerade)
    link: str = "up"  # KubeVirt's interface `state`: up or down
    # qemu's netdev id (the device is "<id>-dev") and PCI slot: fixed for the NIC's life,
    # so a migration target and a hot-plug use the same ones
    qemu_id: str = ""
    slot: int = 0
    # masquerade: the DHCP server serving the guest inside the launcher pod
    dhcp_pid: int = 0
    dhcp_started: int = 0  # its start time (pids are reused)
    ports: list[str] = field(default_factory=list)  # DNAT'd inbound ports; none: all


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
    launcher: str = ""  # the launcher pod; "" is pod_name(name) (a migration names another)
    target_pod: str = ""  # a migration's target launcher pod while the migration runs
    target_nics: list[Nic] = field(default_factory=list)  # and its bindings
    pod_network: bool = True  # the first NIC is the pod network (masquerade)
    migrations: int = 0
    # `vm stop` ended qemu and deleted the launcher pod; the record (and the VM's
    # IPAMClaims, so its addresses) stay for `vm start`
    stopped: bool = False

    @property
    def pod(self) -> str:
        return self.launcher or pod_name(self.name)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VMRecord:
        nics = [Nic(**n) for n in data.get("nics", [])]
        target_nics = [Nic(**n) for n in data.get("target_nics", [])]
        known = {f.name for f in dataclasses.fields(cls)} - {"nics", "target_nics"}
        return cls(**{k: v for k, v in data.items() if k in known}, nics=nics,
                   target_nics=target_nics)


def find_nic(rec: VMRecord, key: str) -> Nic:
    """The NIC named `key`: its pod interface (eth0, net1), else its guest interface,
    else its network (`pod`, `nad` or `ns/nad`)."""
    for attr in ("ifname", "guest_ifname"):
        for nic in rec.nics:
            if getattr(nic, attr) == key:
                return nic
    for nic in rec.nics:
        if key in (nic.network, nic.network.partition("/")[2]):
            return nic
    have = ", ".join(f"{n.ifname} ({n.guest_ifname}, {n.network})" for n in rec.nics)
    raise VMError("vm", f'VM "{rec.name}" has no NIC {key!r}', f"its NICs: {have or 'none'}")


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


@contextlib.contextmanager
def changing(state_dir: str, namespace: str, name: str) -> Iterator[None]:
    """One change of a running VM at a time (migrate, NIC plug/unplug, link): each reads
    the record, works, and writes it back; two at once would lose one's changes."""
    path = os.path.join(vm_dir(state_dir, namespace, name), LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise VMError("vm", f'VM "{name}" not found in namespace "{namespace}"',
                      str(e)) from e
    try:
        if not paths.flock_within(fd, LOCK_WAIT):
            raise VMError("vm", f'another change of VM "{name}" (a migration, a NIC '
                          f"hot-plug) did not finish within {LOCK_WAIT:.0f} s; try again "
                          "later")
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def creating(state_dir: str, namespace: str, name: str) -> Iterator[None]:
    """`changing` for a VM being made: its directory is made first (private), and
    removed again when the VM was not made after all (a failed run leaves nothing)."""
    path = vm_dir(state_dir, namespace, name)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        raise VMError("state", f"cannot make the VM's directory {path}", str(e)) from e
    try:
        with changing(state_dir, namespace, name):
            yield
    finally:
        if not os.path.exists(os.path.join(path, VM_FILE)):
            remove(state_dir, namespace, name)
