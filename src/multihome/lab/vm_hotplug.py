"""`vm add-nic|remove-nic`: NIC hot-plug and unplug on a running lab VM (bridge binding).

Plug: the launcher pod's selection gets the new element (interface netN) and the pod
follows it through the same hot-plug as any pod (`lab.pods.hotplug`: the engine ADDs
the attachment, rewrites network-status, records events), the bridge binding joins
netN to a new tap, and qemu
gets the NIC through its monitor: `getfd` (the tap fd over the socket), `netdev_add`,
`device_add virtio-net-pci` in a free PCI slot; the guest sees a new ethN. Unplug is
the reverse, waiting for the guest to release the device (`DEVICE_DELETED`) before the
netdev and the pod interface go. Any failure of a plug leaves the VM and its pod as they were.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import time

from multihome.attach import engine
from multihome.attach.multus_config import parse_multus_config
from multihome.attach.plan import NETWORKS_ANNOTATION
from multihome.attach.selection import parse_networks_annotation
from multihome.cni.errors import CNIError
from multihome.errors import MultihomeError
from multihome.lab import claims as vmclaims
from multihome.lab import pods as labpods
from multihome.lab import vms
from multihome.lab.settings import LabSettings
from multihome.store import POD, Store
from multihome.vm import bindings, qemu, qmp
from multihome.vm.errors import VMError
from multihome.vm.state import Nic, VMRecord, find_nic, save, vm_dir

STEP = "hotplug"
UNPLUG_TIMEOUT = 60.0  # the guest must answer the ACPI eject; TCG is slow


def _set_selection(store: Store, namespace: str, pod: str,
                   selection: list[dict[str, object]] | str) -> None:
    """The pod's networks annotation: elements (written as JSON), or a text verbatim."""
    obj = store.get(POD, namespace, pod)
    annotations = obj.body.setdefault("metadata", {}).setdefault("annotations", {})
    text = selection if isinstance(selection, str) else \
        json.dumps(selection) if selection else ""
    if text:
        annotations[NETWORKS_ANNOTATION] = text
    else:
        annotations.pop(NETWORKS_ANNOTATION, None)
    store.update(obj)


def _annotation(store: Store, namespace: str, pod: str) -> str:
    return store.get(POD, namespace, pod).annotations.get(NETWORKS_ANNOTATION, "")


def _selection(store: Store, namespace: str, pod: str) -> list[dict[str, object]]:
    text = _annotation(store, namespace, pod)
    return [s.to_dict() for s in parse_networks_annotation(text, namespace, pod)] \
        if text.strip() else []


def _free_ifname(record: engine.PodRecord) -> str:
    used = {a.ifname for a in record.attachments}
    return next(f"net{i}" for i in range(1, 1000) if f"net{i}" not in used)


def _free_slot(rec: VMRecord) -> int:
    used = {qemu.slot(n, i) for i, n in enumerate(rec.nics)}
    # slot 2 is the VGA-less pc machine's first free one below ours; stay above
    return next(s for s in range(qemu.FIRST_SLOT, 0x1F) if s not in used)


def plug(store: Store, settings: LabSettings, namespace: str, name: str, network: str,
         address: str = "", progress: vms.Progress = vms._quiet) -> Nic:
    """Add a NIC on `network` (a NAD, `[ns/]name`) to running VM `name`."""
    if address:
        try:
            ipaddress.ip_interface(address)
        except ValueError as e:
            raise VMError(STEP, f"invalid address {address!r}: expected ADDRESS/PREFIX, "
                          "e.g. 10.250.0.30/24") from e
    rec = vms.running_record(settings, namespace, name)
    if rec.target_pod:
        raise VMError(STEP, f'VM "{name}" is being migrated')
    conf = parse_multus_config(settings.engine_config())
    cid = labpods.container_id(namespace, rec.pod)
    record = engine.load_record(conf, cid)
    if record is None:
        raise VMError(STEP, f"the launcher pod {rec.pod} has no attachment record")
    ifname = _free_ifname(record)
    nad_ns, _, nad = network.rpartition("/")
    element: dict[str, object] = {"name": nad, "interface": ifname}
    if nad_ns:
        element["namespace"] = nad_ns
    before = _annotation(store, namespace, rec.pod)  # put back verbatim on failure
    # a persistent-IPs network: the new NIC gets its own IPAMClaim, as at `vm run`
    _set_selection(store, namespace, rec.pod, vmclaims.with_claims(
        store, namespace, name, rec.pod,
        json.dumps([*_selection(store, namespace, rec.pod), element])))
    label = f"vm/{name}"
    pod_netns = labpods.netns_path(namespace, rec.pod)
    slot = _free_slot(rec)
    nic = Nic(ifname=ifname, network="", binding="bridge", mac="",
              guest_ifname=f"eth{len(rec.nics)}", qemu_id=f"nic{slot - qemu.FIRST_SLOT}",
              slot=slot, addresses=[address] if address else [])
    attached = bound = False
    try:
        # on failure the pod hot-plug sets the annotation back to `before` itself
        outcome = labpods.hotplug(store, settings, namespace, rec.pod, before or None)
        att = next(a for a in outcome.added if a.ifname == ifname)
        attached = True
        nic.network = att.network
        progress(f"pod/{rec.pod}: {ifname} attached to {att.network}")
        if bindings.binding_for(pod_netns, ifname) != "bridge":
            raise VMError(STEP, f"{att.network} is not a bridge network: only NICs with the "
                          "bridge binding can be hot-plugged")
        fd = bindings.bind(pod_netns, nic)
        bound = True
        try:
            with qmp.connect(vm_dir(settings.state_dir, namespace, name)) as mon:
                mon.execute("getfd", {"fdname": nic.qemu_id}, fds=[fd])
                try:
                    # netdev_add takes the named fd out of qemu's table
                    mon.execute("netdev_add", {"type": "tap", "id": nic.qemu_id,
                                               "fd": nic.qemu_id})
                except VMError:
                    with contextlib.suppress(VMError):
                        mon.execute("closefd", {"fdname": nic.qemu_id})
                    raise
                try:
                    mon.execute("device_add", _device(nic))
                except VMError:
                    with contextlib.suppress(VMError):
                        mon.execute("netdev_del", {"id": nic.qemu_id})
                    raise
        finally:
            os.close(fd)  # qemu holds its own copy
    except (MultihomeError, labpods.PodError, StopIteration, OSError) as e:
        if bound:
            with contextlib.suppress(CNIError):
                bindings.unbind(pod_netns, nic)
        _set_selection(store, namespace, rec.pod, before)
        if attached:  # the pod follows its selection back: netN goes
            with contextlib.suppress(MultihomeError, labpods.PodError):
                labpods.hotplug(store, settings, namespace, rec.pod, before or None)
        if isinstance(e, VMError):
            raise
        raise VMError(STEP, f"cannot hot-plug {network} into VM \"{name}\"",
                      str(e) if not isinstance(e, StopIteration) else "") from e
    rec.nics.append(nic)
    rec.networks = ",".join(filter(None, [rec.networks, network]))
    save(settings.state_dir, rec)
    progress(f"{label}: {nic.guest_ifname} hot-plugged on {nic.network} via pod {ifname} "
             f"(mac {nic.mac}, PCI slot {slot:#x})")
    return nic


def _device(nic: Nic) -> dict[str, object]:
    return {"driver": "virtio-net-pci", "netdev": nic.qemu_id, "id": f"{nic.qemu_id}-dev",
            "mac": nic.mac, "addr": f"{nic.slot:#x}"}


def unplug(store: Store, settings: LabSettings, namespace: str, name: str, key: str,
           progress: vms.Progress = vms._quiet) -> Nic:
    """Remove the NIC `key` (see state.find_nic) from running VM `name`."""
    rec = vms.running_record(settings, namespace, name)
    nic = find_nic(rec, key)
    if nic.binding != "bridge":
        raise VMError(STEP, f"{nic.ifname} has the {nic.binding} binding: only bridge NICs "
                      "can be unplugged")
    index = rec.nics.index(nic)
    with qmp.connect(vm_dir(settings.state_dir, namespace, name)) as mon:
        device = qemu.device_id(nic, index)
        mon.execute("device_del", {"id": device})
        deadline = time.monotonic() + UNPLUG_TIMEOUT
        try:
            # one event for the device's virtio backend, then one naming the device
            while mon.wait_event("DEVICE_DELETED", max(0.1, deadline - time.monotonic())
                                 ).get("data", {}).get("device") != device:
                pass
        except VMError as e:
            raise VMError(STEP, f"the guest did not release {nic.guest_ifname} within "
                          f"{UNPLUG_TIMEOUT:.0f} s", "the NIC stays") from e
        mon.execute("netdev_del", {"id": qemu.netdev_id(nic, index)})
    rec.nics.remove(nic)
    save(settings.state_dir, rec)
    pod_netns = labpods.netns_path(namespace, rec.pod)
    with contextlib.suppress(CNIError):
        bindings.unbind(pod_netns, nic)
    previous = _annotation(store, namespace, rec.pod)
    _set_selection(store, namespace, rec.pod,
                   _without(_selection(store, namespace, rec.pod), nic))
    try:
        labpods.hotplug(store, settings, namespace, rec.pod, previous or None)
    except labpods.PodError as e:  # a one-line error, never a traceback
        raise VMError(STEP, f"{nic.ifname} left the VM but not the pod", str(e)) from e
    progress(f"vm/{name}: {nic.guest_ifname} unplugged, pod {nic.ifname} detached from "
             f"{nic.network}")
    return nic


def _without(elements: list[dict[str, object]], nic: Nic) -> list[dict[str, object]]:
    """The selection without the NIC's element: the one naming its interface, else the
    first unnamed element of its network (the engine names those in order)."""
    ns, _, nad = nic.network.rpartition("/")
    named = [i for i, e in enumerate(elements) if e.get("interface") == nic.ifname]
    unnamed = [i for i, e in enumerate(elements) if not e.get("interface")
               and e.get("name") == nad and e.get("namespace", ns) == ns]
    drop = (named or unnamed or [-1])[0]
    return [e for i, e in enumerate(elements) if i != drop]
