"""The lab's VMs, `vm run` and `vm delete`: launcher pod → bindings → qemu → boot, and back.

Here rather than in `vm/`: a lab VM lives in a lab pod (multihome.lab.pods); `vm/` holds
the parts (bindings, qemu, guest, state) that know nothing of the lab.

`run` undoes everything it did when any step fails and names the step in the error;
`delete` works from whatever is left (record, qemu, pod, namespace), so it also
cleans up after a killed qemu or a deleted pod.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence

from multihome.cni.errors import CNIError
from multihome.errors import MultihomeError
from multihome.lab import claims as vmclaims
from multihome.lab import pods as labpods
from multihome.lab.settings import LabSettings
from multihome.net import netns
from multihome.store import POD, NotFound, Store
from multihome.vm import accel as vmaccel
from multihome.vm import agent, announce_guard, bindings, dhcp, guest, masquerade, qemu, qmp
from multihome.vm.errors import VMError
from multihome.vm.state import (
    LINK_STATES,
    POD_NETWORK,
    Nic,
    VMRecord,
    find_nic,
    load,
    load_all,
    pod_name,
    remove,
    save,
    vm_dir,
)

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


def _secondary_nics(attachments: Sequence[tuple[str, str]], pod_netns: str,
                    guest_addresses: dict[str, str], first: int) -> list[Nic]:
    nics = []
    for i, (ifname, network) in enumerate(attachments, start=first):
        nic = Nic(ifname=ifname, network=network,
                  binding=bindings.binding_for(pod_netns, ifname), mac="",
                  guest_ifname=f"eth{i}", qemu_id=f"nic{i}", slot=qemu.FIRST_SLOT + i)
        if ifname in guest_addresses:
            nic.addresses = [guest_addresses[ifname]]
        nics.append(nic)
    return nics


def _pod_nic(ifname: str, ports: Sequence[str], mac: str = "") -> Nic:
    """The pod network's NIC: masquerade on the launcher pod's eth0, a MAC of its own
    (`mac`, the one it had before a stop, else a new one)."""
    return Nic(ifname=ifname, network=POD_NETWORK, binding="masquerade",
               mac=mac or bindings.random_mac(), guest_ifname="eth0", qemu_id="nic0",
               slot=qemu.FIRST_SLOT, ports=list(ports))


def _check_options(rec: VMRecord, link_states: dict[str, str], ports: Sequence[str]) -> None:
    """Refuse bad options before anything is made."""
    for key, value in link_states.items():
        if value not in LINK_STATES:
            raise VMError("vm", f"invalid link state {key}={value}: use up or down")
    for port in ports:
        try:
            masquerade.parse_port(port)
        except ValueError as e:
            raise VMError("vm", str(e)) from e
    if ports and not rec.pod_network:
        raise VMError("vm", "--port forwards to the pod network's NIC: drop --no-pod-network")


def run(store: Store, settings: LabSettings, namespace: str, name: str, networks: str,
        memory: int = 256, guest_addresses: dict[str, str] | None = None,
        progress: Progress = _quiet, *, pod_network: bool = True,
        link_states: dict[str, str] | None = None, ports: Sequence[str] = ()) -> VMRecord:
    """Start VM `name`; on failure nothing of it is left and the error names the step.

    The first NIC is the pod network's (masquerade) unless `pod_network` is False;
    `link_states` maps a NIC (see state.find_nic) to up or down.
    """
    if load(settings.state_dir, namespace, name) is not None:
        raise VMError("vm", f'VM "{name}" already exists in namespace "{namespace}"',
                      f"delete it first: multihome vm delete {name} -n {namespace}")
    if not networks and not pod_network:
        raise VMError("vm", "a VM without the pod network needs at least one network: "
                      "pass --networks")
    rec = VMRecord(name=name, namespace=namespace, memory=memory, networks=networks,
                   pod_network=pod_network)
    _check_options(rec, link_states or {}, ports)
    return _boot(store, settings, rec, networks, guest_addresses or {}, link_states or {},
                 ports, progress)


def _boot(store: Store, settings: LabSettings, rec: VMRecord, selection: str,
          guest_addresses: dict[str, str], link_states: dict[str, str],
          ports: Sequence[str], progress: Progress, pod_mac: str = "") -> VMRecord:
    """Launcher pod with `selection`, bindings, qemu, boot. On failure a new VM is
    removed; a stopped one being started (rec.stopped) is left stopped."""
    root, name, namespace = settings.state_dir, rec.name, rec.namespace
    vdir = vm_dir(root, namespace, name)
    the_guest = guest.prepare(root)
    accel = vmaccel.choose(the_guest.kernel, guest.cache_dir(root))
    rec.accel = accel.name
    progress(f"vm/{name}: guest kernel {the_guest.version}, accelerator {accel.name} "
             f"({accel.reason})")
    fds = launch(store, settings, rec, guest_addresses, progress, ports=ports,
                 selection=selection, pod_mac=pod_mac)
    with _undone_on_failure(store, settings, rec, fds, "qemu", progress):
        for key, value in link_states.items():
            find_nic(rec, key).link = value
        save(root, rec)
        started = time.monotonic()
        pid = qemu.start(name, vdir, the_guest, accel, rec.memory, fds)
        progress(f"vm/{name}: qemu started (pid {pid}, {accel.name})")
        apply_link_states(vdir, rec.nics, f"vm/{name}", progress)
    close_fds(fds)  # qemu holds its own copies now
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
        progress(f"vm/{name}: boot failed, "
                 + ("stopping it again" if rec.stopped else "removing it again"))
        _teardown(store, settings, rec, progress, keep=rec.stopped)
        raise
    rec.boot_seconds = round(time.monotonic() - started, 1)
    rec.stopped = False
    save(root, rec)
    progress(f"vm/{name} running (booted in {rec.boot_seconds} s)")
    return rec


def nics_selection(nics: list[Nic]) -> str:
    """A launcher pod's networks for these NICs (a migration target's, a restarted VM's):
    each secondary NIC's network, interface and MAC, so the guest keeps its MACs (as
    KubeVirt asks CNI, with kubemacpool's MACs on a restart)."""
    out = []
    for nic in nics:
        if nic.network == POD_NETWORK:
            continue
        ns, _, nad = nic.network.rpartition("/")
        element = {"name": nad, "interface": nic.ifname, "mac": nic.mac}
        if ns:
            element["namespace"] = ns
        out.append(element)
    return json.dumps(out) if out else ""


def stop(store: Store, settings: LabSettings, namespace: str, name: str,
         progress: Progress = _quiet) -> VMRecord:
    """`virtctl stop`: qemu ends and the launcher pod goes; the VM (record, NICs with their
    MACs, IPAMClaims and so their addresses) stays, Stopped, for `start`."""
    rec = _record(settings, namespace, name)
    vdir = vm_dir(settings.state_dir, namespace, name)
    if rec.stopped and not qemu.running(vdir) and not _pod_left(store, namespace, rec.pod):
        raise VMError("vm", f'VM "{name}" is already stopped',
                      f"start it: multihome vm start {name} -n {namespace}")
    _teardown(store, settings, rec, progress, keep=True)
    progress(f'vm "{name}" stopped (its record and IPAMClaims kept)')
    return rec


def start(store: Store, settings: LabSettings, namespace: str, name: str,
          progress: Progress = _quiet) -> VMRecord:
    """`virtctl start` of a stopped VM: a new launcher pod with the same networks (same
    interfaces, MACs and claims, so the same addresses), bindings, qemu, boot. A failure
    leaves it stopped as it was."""
    rec = _record(settings, namespace, name)
    vdir = vm_dir(settings.state_dir, namespace, name)
    if qemu.running(vdir):
        raise VMError("vm", f'VM "{name}" is already running')
    if not rec.stopped:
        raise VMError("vm", f'VM "{name}" is not stopped: its qemu exited but its launcher '
                      "pod is left", f"stop it first: multihome vm stop {name} -n {namespace}")
    before = copy.deepcopy(rec.nics)
    # addresses the user gave (NADs without IPAM) are the guest's again; IPAM ones come
    # from the new pod (a claim's: the same)
    given = {n.ifname: n.addresses[0] for n in before
             if n.network != POD_NETWORK and n.addresses and not n.pod_addresses}
    links = {n.ifname: n.link for n in before if n.link != "up"}
    pod_nic = next((n for n in before if n.network == POD_NETWORK), None)
    ports, pod_mac = (pod_nic.ports, pod_nic.mac) if pod_nic else ([], "")
    selection = nics_selection(before) if before else rec.networks
    try:
        return _boot(store, settings, rec, selection, given, links, ports, progress,
                     pod_mac)
    except BaseException:  # Ctrl-C and store errors too: back to Stopped, as it was
        with contextlib.suppress(MultihomeError, OSError):
            _teardown(store, settings, rec, progress, keep=True)  # gone parts are fine
        rec.nics, rec.stopped = before, True
        save(settings.state_dir, rec)
        raise


def restart(store: Store, settings: LabSettings, namespace: str, name: str,
            progress: Progress = _quiet) -> VMRecord:
    """`virtctl restart`: stop (when not stopped yet) and start; a new launcher pod."""
    rec = _record(settings, namespace, name)
    if not rec.stopped or qemu.running(vm_dir(settings.state_dir, namespace, name)):
        stop(store, settings, namespace, name, progress)
    return start(store, settings, namespace, name, progress)


def _record(settings: LabSettings, namespace: str, name: str) -> VMRecord:
    rec = load(settings.state_dir, namespace, name)
    if rec is None:
        raise VMError("vm", f'VM "{name}" not found in namespace "{namespace}"')
    return rec


def _pod_left(store: Store, namespace: str, pod: str) -> bool:
    try:
        store.get(POD, namespace, pod)
        return True
    except NotFound:
        return labpods.exists_netns(namespace, pod)


def apply_link_states(vdir: str, nics: list[Nic], label: str, progress: Progress) -> None:
    """qemu has no command-line switch for a NIC's link: down ones go down over QMP
    right after start (before the guest has loaded its NIC driver)."""
    down = [(i, n) for i, n in enumerate(nics) if n.link == "down"]
    if not down:
        return
    with qmp.connect(vdir) as mon:
        for i, nic in down:
            mon.execute("set_link", {"name": qemu.netdev_id(nic, i), "up": False})
            progress(f"{label}: {nic.guest_ifname} link down")


def set_link(settings: LabSettings, namespace: str, name: str, key: str, state: str,
             progress: Progress = _quiet) -> Nic:
    """Set a NIC's link of a running VM up or down (the guest sees carrier change)."""
    if state not in LINK_STATES:
        raise VMError("vm", f"invalid link state {state!r}: use up or down")
    rec = running_record(settings, namespace, name)
    nic = find_nic(rec, key)
    vdir = vm_dir(settings.state_dir, namespace, name)
    with qmp.connect(vdir) as mon:
        mon.execute("set_link", {"name": qemu.netdev_id(nic, rec.nics.index(nic)),
                                 "up": state == "up"})
    nic.link = state
    save(settings.state_dir, rec)
    progress(f"vm/{name}: {nic.guest_ifname} ({nic.ifname}, {nic.network}) link {state}")
    return nic


def running_record(settings: LabSettings, namespace: str, name: str) -> VMRecord:
    rec = _record(settings, namespace, name)
    if rec.stopped and not qemu.running(vm_dir(settings.state_dir, namespace, name)):
        raise VMError("vm", f'VM "{name}" is stopped',
                      f"start it: multihome vm start {name} -n {namespace}")
    if not qemu.running(vm_dir(settings.state_dir, namespace, name)):
        raise VMError("vm", f'VM "{name}" is not running',
                      f"delete it: multihome vm delete {name} -n {namespace}")
    return rec


def launcher_labels(vm: str) -> dict[str, str]:
    """KubeVirt's labels on a VM's launcher pod: what policies select a VM by."""
    return {"kubevirt.io": "virt-launcher", "kubevirt.io/domain": vm,
            "vm.kubevirt.io/name": vm}


def launch(store: Store, settings: LabSettings, rec: VMRecord,
           guest_addresses: dict[str, str], progress: Progress = _quiet,
           ports: Sequence[str] = (), selection: str | None = None,
           pod_mac: str = "") -> list[qemu.NicFd]:
    """The launcher pod with the VM's networks (`selection`, else rec.networks) and a
    binding per NIC (the pod network's masquerade first, then one per secondary network):
    one fd per NIC for qemu, in network order. On failure nothing of it is left (a
    stopped VM being started stays stopped)."""
    rec.launcher = ""
    pod = pod_name(rec.name)
    try:
        # networks asking for persistent IPs get an IPAMClaim per NIC (lab/claims.py)
        selection = vmclaims.with_claims(store, rec.namespace, rec.name, pod,
                                         rec.networks if selection is None else selection)
        outcome = labpods.run(store, settings, rec.namespace, pod,
                              labpods.networks_annotation(selection), progress=progress,
                              labels=launcher_labels(rec.name))
    except (labpods.PodError, MultihomeError) as e:
        raise VMError("pod", f"launcher pod {rec.namespace}/{pod} could not be started",
                      str(e)) from e
    pod_netns = labpods.netns_path(rec.namespace, pod)
    fds: list[qemu.NicFd] = []
    vdir = vm_dir(settings.state_dir, rec.namespace, rec.name)
    with _undone_on_failure(store, settings, rec, fds, "binding", progress):
        os.makedirs(vdir, exist_ok=True)
        save(settings.state_dir, rec)
        default = [a.ifname for a in outcome.attachments if a.default]
        rec.nics = [_pod_nic(default[0], ports, pod_mac)] \
            if rec.pod_network and default else []
        if rec.pod_network and not default:
            raise VMError("binding", "the launcher pod has no default network interface")
        secondary = [(a.ifname, a.network) for a in outcome.attachments if not a.default]
        rec.nics += _secondary_nics(secondary, pod_netns, guest_addresses, len(rec.nics))
        gateways = {s.interface: s.gateway[0] for s in outcome.status if s.gateway}
        for nic in rec.nics:
            if not nic.gateway:
                nic.gateway = gateways.get(nic.ifname, "")
        # saved after each step, so delete can undo a partial binding
        bind_all(pod_netns, rec.nics, vdir, fds, lambda: save(settings.state_dir, rec),
                 f"vm/{rec.name}", progress)
    return fds


def bind_all(pod_netns: str, nics: list[Nic], log_dir: str, fds: list[qemu.NicFd],
             saved: Callable[[], None], label: str, progress: Progress) -> None:
    """Bind each NIC in the pod (and start the DHCP server of a masquerade one); the fds
    go to `fds` as they are made, so the caller can close them on failure."""
    for nic in nics:
        fds.append(qemu.NicFd(nic, bindings.bind(pod_netns, nic)))
        saved()
        if nic.dhcp:
            dhcp.start(pod_netns, log_dir, nic)
            saved()
        progress(f"{label}: {nic.ifname} ({nic.network}) bound with {nic.binding} "
                 f"binding, guest {nic.guest_ifname} mac {nic.mac} "
                 f"address {','.join(nic.addresses) or '<none>'}"
                 + (" by DHCP" if nic.dhcp else ""))


def release(pod_netns: str, nics: list[Nic], label: str, progress: Progress,
            restore: bool = True) -> None:
    """Stop the NICs' DHCP servers and undo their bindings; gone parts are fine.

    restore=False leaves the bindings for the pod's deletion: a migration's source must
    not give netN back the VM's MAC, which the VM now uses from another port."""
    for nic in nics:
        # before the pod goes: a DHCP server left running would keep its namespace alive
        if dhcp.stop(nic):
            progress(f"{label}: DHCP server of {nic.ifname} stopped")
        if restore:
            with contextlib.suppress(CNIError):
                bindings.unbind(pod_netns, nic)


@contextlib.contextmanager
def _undone_on_failure(store: Store, settings: LabSettings, rec: VMRecord,
                       fds: list[qemu.NicFd], step: str, progress: Progress) -> Iterator[None]:
    """A failure inside removes everything of the VM again; an error that does not name
    its own step is reported as `step`."""
    try:
        yield
    except (MultihomeError, OSError) as e:
        progress(f"vm/{rec.name}: failed, "
                 + ("stopping it again" if rec.stopped else "removing it again"))
        close_fds(fds)
        _teardown(store, settings, rec, progress, keep=rec.stopped)
        if isinstance(e, VMError):
            raise
        raise VMError(step, str(e)) from e


def close_fds(fds: list[qemu.NicFd]) -> None:
    for n in fds:
        with contextlib.suppress(OSError):
            os.close(n.fd)
    fds.clear()


def _teardown(store: Store, settings: LabSettings, rec: VMRecord, progress: Progress,
              keep: bool = False) -> None:
    """qemu, a migration's leftovers, the bindings and the launcher pod go; the record and
    the VM's IPAMClaims too unless `keep` (the VM is then Stopped)."""
    vdir = vm_dir(settings.state_dir, rec.namespace, rec.name)
    if qemu.stop(vdir):
        progress(f"vm/{rec.name}: qemu stopped")
    # a migration that did not finish (killed): its guard and its target
    with contextlib.suppress(VMError):
        announce_guard.remove(announce_guard.table_name(rec.namespace, rec.name))
    if rec.target_pod:
        if qemu.stop(qemu.target_dir(vdir, rec.migrations + 1)):
            progress(f"vm/{rec.name}: migration target's qemu stopped")
        release(labpods.netns_path(rec.namespace, rec.target_pod), rec.target_nics,
                f"vm/{rec.name}", progress)
        delete_pod(store, settings, rec.namespace, rec.target_pod, progress)
    release(labpods.netns_path(rec.namespace, rec.pod), rec.nics, f"vm/{rec.name}", progress)
    delete_pod(store, settings, rec.namespace, rec.pod, progress)
    if not keep:
        remove(settings.state_dir, rec.namespace, rec.name)
        # with the VM its claims go (a `vm run` that failed too: nothing else would
        # ever delete them, and their addresses would stay taken)
        freed = vmclaims.drop(store, rec.namespace, rec.name)
        if freed:
            progress(f"vm/{rec.name}: its IPAMClaims deleted, {', '.join(freed)} released")
        return
    rec.stopped, rec.launcher, rec.target_pod, rec.target_nics = True, "", "", []
    for nic in rec.nics:  # a later pid of the same number is not our DHCP server
        nic.dhcp_pid = nic.dhcp_started = 0
    save(settings.state_dir, rec)


def delete_pod(store: Store, settings: LabSettings, namespace: str, pod: str,
               progress: Progress) -> None:
    """Delete a launcher pod if anything of it is left."""
    if _pod_left(store, namespace, pod):
        with contextlib.suppress(labpods.PodError):
            labpods.delete(store, settings, namespace, pod, progress)


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
