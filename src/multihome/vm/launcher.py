"""Which VM a launcher pod belongs to, and whether that VM still has processes in it.

A VM's first launcher pod is `virt-launcher-<vm>`; a migration target's is
`virt-launcher-<vm>-<5 hex digits>` (KubeVirt's pods carry such a suffix). The pod is
in use while the VM's qemu runs or its DHCP server does (either would keep the pod's
namespace alive with its links if the pod went).
"""

from __future__ import annotations

import re

from multihome.errors import MultihomeError
from multihome.vm import dhcp, qemu
from multihome.vm.state import LAUNCHER_PREFIX, VMRecord, load, vm_dir

_SUFFIX = re.compile(r"^(.+)-[0-9a-f]{5}$")


def candidate_vms(pod: str) -> list[str]:
    """VM names whose launcher pod `pod` may be, most specific first."""
    vm = pod.removeprefix(LAUNCHER_PREFIX)
    if vm == pod or not vm:
        return []
    m = _SUFFIX.match(vm)
    return [vm, m.group(1)] if m else [vm]


def _pods_of(rec: VMRecord) -> set[str]:
    return {rec.pod, *([rec.target_pod] if rec.target_pod else [])}


def vm_using(state_dir: str, namespace: str, pod: str) -> str | None:
    """The VM with a process in launcher pod `pod`, else None."""
    for vm in candidate_vms(pod):
        vdir = vm_dir(state_dir, namespace, vm)
        try:
            rec = load(state_dir, namespace, vm)
        except MultihomeError:
            rec = None
        if rec is not None and pod not in _pods_of(rec):
            continue
        # by the qemu pid file, not only the record: a record that cannot be read
        # still refuses
        if qemu.running(vdir) or (rec is not None and any(dhcp.running(n) for n in rec.nics)):
            return vm
    return None
