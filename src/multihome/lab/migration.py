"""`vm migrate`: live migration of a lab VM to a new launcher pod on the same node.

1. guard: only the source's node-bridge ports may carry the VM's MACs (vm.announce_guard);
2. target launcher pod `virt-launcher-<vm>-<5 hex>` with the same networks, each
   secondary network asking CNI for the NIC's MAC (the selection's `mac`, as KubeVirt
   asks), the same bindings, and a qemu with the same devices waiting (`-incoming`,
   paused) on a unix socket in `<vm dir>/target-<n>/`;
3. QMP `migrate` on the source until `completed` (the source is then paused);
4. switch-over: guard off, `cont` on the target, `announce-self` (RARPs from each MAC
   teach the node bridge the new ports), source qemu stopped, source pod deleted, the
   target's files moved into the VM's directory and the record pointed at the new pod.
Any failure before the switch-over removes the target and the guard and leaves the VM
running on the source as it was; the error names the step.
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import time

from multihome.errors import MultihomeError
from multihome.lab import claims as vmclaims
from multihome.lab import pods as labpods
from multihome.lab import vms
from multihome.lab.settings import LabSettings
from multihome.paths import write_file_atomic
from multihome.store import Store
from multihome.vm import announce_guard, guest, qemu, qmp
from multihome.vm.accel import Accel
from multihome.vm.errors import VMError
from multihome.vm.state import Nic, VMRecord, pod_name, save, vm_dir

STEP = "migrate"
MIGRATE_SOCK = "migrate.sock"
MIGRATE_TIMEOUT = 180.0  # TCG guests of a few hundred MiB move in seconds
MAX_BANDWIDTH = 1 << 33  # bytes/s: a local socket, no reason to throttle
# qemu's announce-self: rounds of RARPs from every NIC, 50 ms then 100 ms apart
ANNOUNCE = {"initial": 50, "max": 550, "rounds": 5, "step": 100}


def target_pod_name(vm: str) -> str:
    return f"{pod_name(vm)}-{secrets.token_hex(3)[:5]}"


def _target_nics(nics: list[Nic]) -> list[Nic]:
    """The source's NICs with what the bindings made in the source pod forgotten."""
    out = []
    for nic in nics:
        t = copy.deepcopy(nic)
        t.bridge = t.tap = t.pod_mac = ""
        t.pod_addresses = []
        t.dhcp_pid = t.dhcp_started = 0
        out.append(t)
    return out


def _check(rec: VMRecord) -> None:
    if rec.target_pod:
        raise VMError(STEP, f'VM "{rec.name}" has a migration target {rec.target_pod} '
                      "left from an earlier migration",
                      f"delete the VM or its pod: multihome vm delete {rec.name} "
                      f"-n {rec.namespace}")
    macvtap = [n.ifname for n in rec.nics if n.binding == "macvtap"]
    if macvtap:
        raise VMError(STEP, f"the macvtap NICs {', '.join(macvtap)} cannot be migrated "
                      "in the lab (bridge and masquerade bindings can)")


def migrate(store: Store, settings: LabSettings, namespace: str, name: str,
            progress: vms.Progress = vms._quiet) -> VMRecord:
    root = settings.state_dir
    rec = vms.running_record(settings, namespace, name)
    _check(rec)
    vdir = vm_dir(root, namespace, name)
    tdir = qemu.target_dir(vdir, rec.migrations + 1)
    label = f"vm/{name}"
    source_netns = labpods.netns_path(namespace, rec.pod)
    table = announce_guard.table_name(namespace, name)
    guarded = [(n.mac, announce_guard.host_port(source_netns, n.ifname))
               for n in rec.nics if n.binding == "bridge"]
    started = time.monotonic()
    announce_guard.install(table, guarded)
    progress(f"{label}: node bridge guarded: the VM's MACs only from "
             f"{', '.join(p for _, p in guarded) or '<no bridge NICs>'} until switch-over")
    rec.target_pod = target_pod_name(name)
    rec.target_nics = _target_nics(rec.nics)
    try:
        save(root, rec)
        _start_target(store, settings, rec, tdir, progress)
        _transfer(vdir, tdir, label, progress)
    except BaseException as e:  # Ctrl-C too: the guard and the target must not stay
        progress(f"{label}: migration failed, removing the target; the VM stays on "
                 f"{rec.pod}")
        _abandon_target(store, settings, rec, tdir, progress)
        announce_guard.remove(table)
        save(root, rec)
        if isinstance(e, VMError) or not isinstance(e, MultihomeError | OSError):
            raise
        raise VMError(STEP, str(e)) from e
    _switch_over(store, settings, rec, vdir, tdir, table, progress)
    progress(f"{label} migrated to {rec.pod} in {time.monotonic() - started:.1f} s")
    return rec


def _start_target(store: Store, settings: LabSettings, rec: VMRecord, tdir: str,
                  progress: vms.Progress) -> None:
    label = f"vm/{rec.name}"
    try:
        # the same IPAMClaims: the target's ADD gets the addresses the source holds (they
        # are the claims', so the source's DEL after the switch-over leaves them)
        selection = vmclaims.with_claims(store, rec.namespace, rec.name, rec.target_pod,
                                         vms.nics_selection(rec.nics))
        outcome = labpods.run(store, settings, rec.namespace, rec.target_pod,
                              labpods.networks_annotation(selection),
                              progress=progress, labels=vms.launcher_labels(rec.name))
    except (labpods.PodError, MultihomeError) as e:
        raise VMError(STEP, f"target launcher pod {rec.namespace}/{rec.target_pod} could "
                      "not be started", str(e)) from e
    got = {a.ifname for a in outcome.attachments}
    missing = [n.ifname for n in rec.target_nics if n.ifname not in got]
    if missing:
        raise VMError(STEP, f"the target pod lacks {', '.join(missing)}")
    os.makedirs(tdir, mode=0o700, exist_ok=True)
    target_netns = labpods.netns_path(rec.namespace, rec.target_pod)
    fds: list[qemu.NicFd] = []
    try:
        vms.bind_all(target_netns, rec.target_nics, tdir, fds,
                     lambda: save(settings.state_dir, rec), f"{label} (target)", progress)
        moved = [n.ifname for s, n in zip(rec.nics, rec.target_nics, strict=True)
                 if s.mac != n.mac]
        if moved:
            raise VMError(STEP, f"the target pod's {', '.join(moved)} did not get the VM's "
                          "MAC from CNI")
        the_guest = guest.prepare(settings.state_dir)
        pid = qemu.start(rec.name, tdir, the_guest, Accel(rec.accel, "as the source"),
                         rec.memory, fds, incoming=os.path.join(tdir, MIGRATE_SOCK))
        progress(f"{label}: target qemu waiting for the state (pid {pid})")
        vms.apply_link_states(tdir, rec.target_nics, f"{label} (target)", progress)
    finally:
        vms.close_fds(fds)


def _transfer(vdir: str, tdir: str, label: str, progress: vms.Progress) -> None:
    """QMP migrate on the source until it completes (the source then stays paused)."""
    with qmp.connect(vdir) as mon:
        mon.execute("migrate-set-parameters", {"max-bandwidth": MAX_BANDWIDTH})
        mon.execute("migrate", {"uri": f"unix:{os.path.join(tdir, MIGRATE_SOCK)}"})
        deadline = time.monotonic() + MIGRATE_TIMEOUT
        while True:
            info = mon.execute("query-migrate")
            status = info.get("status", "") if isinstance(info, dict) else ""
            if status == "completed":
                ram = info.get("ram", {})
                progress(f"{label}: state transferred ({ram.get('total', 0) >> 20} MiB, "
                         f"downtime {info.get('downtime', '?')} ms)")
                return
            if status in ("failed", "cancelled"):
                raise VMError(STEP, f"qemu's migration {status}",
                              str(info.get("error-desc", "")))
            if time.monotonic() > deadline:
                with contextlib.suppress(VMError):
                    mon.execute("migrate_cancel")
                with contextlib.suppress(VMError):
                    mon.execute("cont")
                raise VMError(STEP, f"the migration did not complete in "
                              f"{MIGRATE_TIMEOUT:.0f} s")
            time.sleep(0.1)


def _switch_over(store: Store, settings: LabSettings, rec: VMRecord, vdir: str, tdir: str,
                 table: str, progress: vms.Progress) -> None:
    label = f"vm/{rec.name}"
    progress(f"{label}: the guard dropped {announce_guard.dropped(table)} frames with the "
             "VM's MACs from other ports")
    announce_guard.remove(table)
    with qmp.connect(tdir) as mon:
        mon.execute("cont")
        mon.execute("announce-self", ANNOUNCE)
    progress(f"{label}: switched over: target running, its MACs announced")
    source_pod, source_nics = rec.pod, rec.nics
    # read first: a source that was itself a target unlinks <target>/qemu.pid on exit
    pid = qemu.read_pid(tdir)
    qemu.stop(vdir)
    rec.launcher, rec.nics = rec.target_pod, rec.target_nics
    rec.target_pod, rec.target_nics = "", []
    rec.migrations += 1
    for fname in os.listdir(tdir):
        path = os.path.join(tdir, fname)
        if fname in (qemu.PID_FILE, MIGRATE_SOCK):
            os.unlink(path)  # a stale pid file here would name the running qemu
        else:
            os.replace(path, os.path.join(vdir, fname))
    os.rmdir(tdir)
    # qemu keeps the pid file path it was given: ours now names the target's pid
    write_file_atomic(os.path.join(vdir, qemu.PID_FILE), f"{pid}\n", 0o600)
    save(settings.state_dir, rec)
    vms.release(labpods.netns_path(rec.namespace, source_pod), source_nics,
                f"{label} (source)", progress, restore=False)
    vms.delete_pod(store, settings, rec.namespace, source_pod, progress)


def _abandon_target(store: Store, settings: LabSettings, rec: VMRecord, tdir: str,
                    progress: vms.Progress) -> None:
    if qemu.stop(tdir):
        progress(f"vm/{rec.name}: target qemu stopped")
    vms.release(labpods.netns_path(rec.namespace, rec.target_pod), rec.target_nics,
                f"vm/{rec.name} (target)", progress)
    vms.delete_pod(store, settings, rec.namespace, rec.target_pod, progress)
    with contextlib.suppress(OSError):
        for fname in os.listdir(tdir):
            os.unlink(os.path.join(tdir, fname))
        os.rmdir(tdir)
    rec.target_pod, rec.target_nics = "", []
