"""The lab's VMs, `vm run` and `vm delete`: launcher pod → bindings → qemu → boot, and back.

Here rather than in `vm/`: a lab VM lives in a lab pod (multihome.lab.pods); `vm/` holds
the parts (bindings, qemu, guest, state) that know nothing of the lab.

`run` undoes everything it did when any step fails and names the step in the error;
`delete` works from whatever is left (record, qemu, pod, namespace), so it also
cleans up after a killed qemu or a deleted pod.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence

from multihome.cni.errors import CNIError
from multihome.errors import MultihomeError
from multihome.lab import pods as labpods
from multihome.lab.settings import LabSettings
from multihome.net import netns
from multihome.store import POD, NotFound, Store
from multihome.vm import accel as vmaccel
from multihome.vm import agent, bindings, guest, qemu
from multihome.vm.errors import VMError
from multihome.vm.state import Nic, VMRecord, load, load_all, pod_name, remove, save, vm_dir

Progress = Callable[[str], None]
BOOT_TIMEOUT_ENV = "MULTIHOME_VM_BOOT_TIMEOUT"
DEFAULT_BOOT_TIMEOUT = 180.0


def _quiet(_: str) -> None:
    pass


def _boot_timeout() -> float:
    try:
        return float(os.environ.get(BOOT_TIMEOUT_ENV, DEFAULT_BOOT_TIMEOUT))
    except ValueError:
        return DEFAULT_BOOT_TIMEOUT


def _nics(outcome_attachments: Sequence[tuple[str, str]], pod_netns: str,
          guest_addresses: dict[str, str]) -> list[Nic]:
    nics = []
    for i, (ifname, network) in enumerate(outcome_attachments):
        nic = Nic(ifname=ifname, network=network,
                  binding=bindings.binding_for(pod_netns, ifname), mac="",
                  guest_ifname=f"eth{i}")
        if ifname in guest_addresses:
            nic.addresses = [guest_addresses[ifname]]
        nics.append(nic)
    return nics


def run(store: Store, settings: LabSettings, namespace: str, name: str, networks: str,
        memory: int = 256, guest_addresses: dict[str, str] | None = None,
        progress: Progress = _quiet) -> VMRecord:
    """Start VM `name`; on failure nothing of it is left and the error names the step."""
    root = settings.state_dir
    vdir = vm_dir(root, namespace, name)
    if load(root, namespace, name) is not None:
        raise VMError("vm", f'VM "{name}" already exists in namespace "{namespace}"',
                      f"delete it first: multihome vm delete {name} -n {namespace}")
    if not networks:
        raise VMError("vm", "a VM needs at least one network: pass --networks")
    the_guest = guest.prepare(root)
    accel = vmaccel.choose(the_guest.kernel, guest.cache_dir(root))
    progress(f"vm/{name}: guest kernel {the_guest.version}, accelerator {accel.name} "
             f"({accel.reason})")
    rec = VMRecord(name=name, namespace=namespace, memory=memory, networks=networks,
                   accel=accel.name)
    fds = launch(store, settings, rec, guest_addresses or {}, progress)
    with _undone_on_failure(store, settings, rec, fds, "qemu", progress):
        started = time.monotonic()
        pid = qemu.start(name, vdir, the_guest, accel, memory, fds)
        progress(f"vm/{name}: qemu started (pid {pid}, {accel.name})")
    _close(fds)  # qemu holds its own copies now
    pod_netns = labpods.netns_path(namespace, rec.pod)

    def alive() -> str:
        if not qemu.running(vdir):
            return ("qemu exited during boot: "
                    f"{qemu.log_tail(vdir, qemu.LOG_FILE) or 'no message'}; console: "
                    f"{qemu.log_tail(vdir, qemu.CONSOLE_LOG, 3) or 'empty'}")
        if not netns.exists(pod_netns):
            return f"the launcher pod {namespace}/{rec.pod} was deleted during boot"
        return ""

    try:
        agent.wait_ready(vdir, started + _boot_timeout(), alive)
    except VMError:
        progress(f"vm/{name}: boot failed, removing it again")
        _teardown(store, settings, rec, progress)
        raise
    rec.boot_seconds = round(time.monotonic() - started, 1)
    save(root, rec)
    progress(f"vm/{name} running (booted in {rec.boot_seconds} s)")
    return rec


def launcher_labels(vm: str) -> dict[str, str]:
    """KubeVirt's labels on a VM's launcher pod: what policies select a VM by."""
    return {"kubevirt.io": "virt-launcher", "kubevirt.io/domain": vm,
            "vm.kubevirt.io/name": vm}


def launch(store: Store, settings: LabSettings, rec: VMRecord,
           guest_addresses: dict[str, str], progress: Progress = _quiet) -> list[qemu.NicFd]:
    """The launcher pod with the VM's networks and a binding per secondary network: one
    fd per NIC for qemu, in network order. On failure nothing of it is left."""
    pod = pod_name(rec.name)
    try:
        outcome = labpods.run(store, settings, rec.namespace, pod,
                              labpods.networks_annotation(rec.networks), progress=progress,
                              labels=launcher_labels(rec.name))
    except (labpods.PodError, MultihomeError) as e:
        raise VMError("pod", f"launcher pod {rec.namespace}/{pod} could not be started",
                      str(e)) from e
    pod_netns = labpods.netns_path(rec.namespace, pod)
    fds: list[qemu.NicFd] = []
    with _undone_on_failure(store, settings, rec, fds, "binding", progress):
        os.makedirs(vm_dir(settings.state_dir, rec.namespace, rec.name), exist_ok=True)
        save(settings.state_dir, rec)
        secondary = [(a.ifname, a.network) for a in outcome.attachments if not a.default]
        rec.nics = _nics(secondary, pod_netns, guest_addresses)
        gateways = {s.interface: s.gateway[0] for s in outcome.status if s.gateway}
        for nic in rec.nics:
            nic.gateway = gateways.get(nic.ifname, "")
            fds.append(qemu.NicFd(nic, bindings.bind(pod_netns, nic)))
            save(settings.state_dir, rec)  # after each, so delete can undo a partial binding
            progress(f"vm/{rec.name}: {nic.ifname} ({nic.network}) bound with {nic.binding} "
                     f"binding, guest {nic.guest_ifname} mac {nic.mac} "
                     f"address {','.join(nic.addresses) or '<none>'}")
    return fds


@contextlib.contextmanager
def _undone_on_failure(store: Store, settings: LabSettings, rec: VMRecord,
                       fds: list[qemu.NicFd], step: str, progress: Progress) -> Iterator[None]:
    """A failure inside removes everything of the VM again; an error that does not name
    its own step is reported as `step`."""
    try:
        yield
    except (MultihomeError, OSError) as e:
        progress(f"vm/{rec.name}: failed, removing it again")
        _close(fds)
        _teardown(store, settings, rec, progress)
        if isinstance(e, VMError):
            raise
        raise VMError(step, str(e)) from e


def _close(fds: list[qemu.NicFd]) -> None:
    for n in fds:
        with contextlib.suppress(OSError):
            os.close(n.fd)
    fds.clear()


def _teardown(store: Store, settings: LabSettings, rec: VMRecord, progress: Progress) -> None:
    vdir = vm_dir(settings.state_dir, rec.namespace, rec.name)
    if qemu.stop(vdir):
        progress(f"vm/{rec.name}: qemu stopped")
    pod_netns = labpods.netns_path(rec.namespace, rec.pod)
    for nic in rec.nics:
        with contextlib.suppress(CNIError):
            bindings.unbind(pod_netns, nic)
    try:
        store.get(POD, rec.namespace, rec.pod)
        exists = True
    except NotFound:
        exists = labpods.exists_netns(rec.namespace, rec.pod)
    if exists:
        with contextlib.suppress(labpods.PodError):
            labpods.delete(store, settings, rec.namespace, rec.pod, progress)
    remove(settings.state_dir, rec.namespace, rec.name)


def delete(store: Store, settings: LabSettings, namespace: str, name: str,
           progress: Progress = _quiet) -> None:
    rec = load(settings.state_dir, namespace, name)
    if rec is None:
        pod = pod_name(name)
        try:
            store.get(POD, namespace, pod)
        except NotFound as e:
            if not labpods.exists_netns(namespace, pod):
                raise VMError("vm", f'VM "{name}" not found in namespace "{namespace}"') from e
        rec = VMRecord(name=name, namespace=namespace, memory=0, networks="")
    _teardown(store, settings, rec, progress)
    progress(f'vm "{name}" deleted')


def delete_all(store: Store, settings: LabSettings, progress: Progress = _quiet) -> list[str]:
    """Delete every VM of the lab (for `lab down`); returns the errors, one per VM."""
    errors = []
    for rec in load_all(settings.state_dir, None):
        try:
            delete(store, settings, rec.namespace, rec.name, progress)
        except MultihomeError as e:
            errors.append(str(e))
    return errors
