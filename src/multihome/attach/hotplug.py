"""Hot-plug and unplug: a running pod follows edits of its `k8s.v1.cni.cncf.io/networks`.

The engine's record of the container is the truth about what the pod has (never the old
annotation, which a missed watch event or a crash would make wrong): the pod's current
selection is matched element by element against the record's attachments, the elements
without a match are ADDed into the record's netns and the attachments without one are
DELeted, each through its cached config (the NAD may be gone). No container runtime is
asked for anything.

An element keeps its interface as long as it stays in the list unchanged (same network,
interface request and attributes); an element whose attributes changed is replaced. A
hot-plug is all or nothing for the additions: everything is resolved before the kernel
is touched, and a delegate that fails makes the others added by the same edit go again
(and re-adds what was unplugged to free a requested name), so the pod is left as it was
and the error says why. Unplugs that fail are kept in the record, so the pod's DEL still
tries them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from multihome import paths
from multihome.attach import engine, events, naming, side_by_side
from multihome.attach import status as netstatus
from multihome.attach.logs import log
from multihome.attach.multus_config import MultusConfig
from multihome.attach.plan import (
    Attachment,
    PodRef,
    assign_device,
    check_delegate,
    device_assigner,
    load_pod,
    selected_attachment,
    selection_of,
)
from multihome.attach.selection import NetworkSelection
from multihome.cni.errors import (
    CNIError,
    InvalidEnvironment,
    TryAgainLater,
    UnknownContainer,
)
from multihome.cni.result import Result
from multihome.net.default_route import IPAddress, move_default_route
from multihome.store import Object, Store

# how long a hot-plug waits for another one in the same cniDir (a CLI and the daemon may
# both run one); the delegates themselves are bounded by their own timeouts
LOCK_WAIT_S = 60.0
_LOCK_POLL_S = 0.05


class HotplugFailed(CNIError):
    """An unplug failed; whatever was added by the same edit stays (it worked)."""


@dataclass
class HotplugOutcome:
    added: list[Attachment] = field(default_factory=list)
    removed: list[Attachment] = field(default_factory=list)
    status: list[netstatus.NetworkStatus] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def find_record(conf: MultusConfig, pod: PodRef) -> engine.PodRecord | None:
    """The engine's record of the pod's sandbox (the newest, should there be two)."""
    found = [r for r in engine.list_records(conf)
             if r.pod is not None and (r.pod.namespace, r.pod.name) == (pod.namespace,
                                                                       pod.name)]
    if not found:
        return None
    return max(found, key=lambda r: _mtime(engine.record_path(conf, r.container_id)))


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


@contextlib.contextmanager
def exclusive(conf: MultusConfig) -> Iterator[None]:
    """One hot-plug (or a lab pod's DEL) at a time per cniDir, across processes: a
    flock on the records' directory, waited for at most LOCK_WAIT_S."""
    directory = engine.record_dir(conf)
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:  # no records at all (or no way to read them): nothing to change
        raise UnknownContainer(f"no attachment records in {directory}: nothing to "
                               "hot-plug", str(e)) from e
    try:
        if not paths.flock_within(fd, LOCK_WAIT_S, _LOCK_POLL_S):
            raise TryAgainLater(f"another hot-plug in {directory} did not finish within "
                                f"{LOCK_WAIT_S:.0f} s; try again later")
        yield
    finally:
        os.close(fd)  # releases the lock


def _is_selected(conf: MultusConfig, att: Attachment) -> bool:
    """Whether the attachment came from the selection annotation. Records written before
    attachments carried their element: every NAD attachment that is not the default
    network nor one of the node's defaultNetworks."""
    if att.element is not None:
        return True
    defaults = {f"{conf.multus_namespace}/{n}" for n in conf.default_networks}
    return not att.default and "/" in att.network and att.network not in defaults


def _same(att: Attachment, sel: NetworkSelection) -> bool:
    if att.element is not None:
        return att.element == sel.to_dict()
    # an old record: the network and, when the element names one, the interface
    return att.network == sel.qualified_name and sel.interface in (None, att.ifname)


def match_elements(current: Sequence[Attachment],
           selection: Sequence[NetworkSelection]) -> dict[int, Attachment]:
    """Element index -> the attachment it already has. Named elements first, so that an
    unnamed element of the same network never takes a named one's interface."""
    remaining = list(current)
    matched: dict[int, Attachment] = {}
    order = sorted(range(len(selection)), key=lambda i: selection[i].interface is None)
    for i in order:
        for att in remaining:
            if _same(att, selection[i]):
                matched[i] = att
                remaining.remove(att)
                break
    return matched


def hotplug(conf: MultusConfig, store: Store, container_id: str,
            extra_path: Sequence[str] = ()) -> HotplugOutcome:
    """Bring the container's attachments in line with its pod's selection annotation."""
    path = engine.cni_path(conf, extra_path)
    with exclusive(conf):
        record = engine.load_record(conf, container_id)
        if record is None or record.pod is None:
            raise UnknownContainer(f"no attachments of a pod cached for container "
                                   f"{container_id}: nothing to hot-plug")
        if not record.netns or not os.path.exists(record.netns):
            raise InvalidEnvironment(f"pod {record.pod}: its network namespace "
                                     f"{record.netns or '(none)'} is gone; cannot hot-plug")
        # the delegates' cluster IPAM keeps its pools (and IPAMClaims) in this store, as
        # for the pod's first ADD: never in the plugin's own default
        with engine.pools_bound(conf, store):
            return _hotplug(conf, store, record, path)


def _hotplug(conf: MultusConfig, store: Store, record: engine.PodRecord,
             path: Sequence[str]) -> HotplugOutcome:
    assert record.pod is not None
    pod = record.pod
    ref = (pod.namespace, pod.name)
    pod_obj = load_pod(store, pod)
    try:
        selection = selection_of(pod_obj, pod)
    except CNIError as e:
        events.selection_refused(store, ref, e.msg)
        raise e.reworded(f"hot-plug refused, the pod is left as it was: {e.msg}") from e
    fixed = [a for a in record.attachments if not _is_selected(conf, a)]
    current = [a for a in record.attachments if _is_selected(conf, a)]
    matched = match_elements(current, selection)
    kept_ids = {id(a) for a in matched.values()}
    to_remove = [a for a in current if id(a) not in kept_ids]
    new_idx = [i for i in range(len(selection)) if i not in matched]
    if not new_idx and not to_remove:
        return HotplugOutcome()
    added = _plan_additions(conf, store, record, pod_obj, selection, new_idx, to_remove,
                            fixed)
    # a requested name that an unplugged interface holds: that one must go first
    added_names = {a.ifname for a in added.values()}
    first = [a for a in to_remove if a.ifname in added_names]
    later = [a for a in to_remove if a.ifname not in added_names]
    original = list(record.attachments)
    if first:
        failed = _unplug(conf, store, record, first, path)
        if failed:
            raise failed[0][1]
    record.attachments = [a for a in original if a not in first] + list(added.values())
    engine.save_record(conf, record)  # before the delegates run: a crash leaves a record
    results = _plug(conf, store, record, list(added.values()), first, original, path)
    failed = _unplug(conf, store, record, later, path)
    failed_ids = {id(a) for a, _ in failed}
    in_order = [matched.get(i) or added[i] for i in range(len(selection))]
    record.attachments = fixed + in_order + [a for a in later if id(a) in failed_ids]
    engine.save_record(conf, record)
    _restore_default_routes(conf, record, [a for a in to_remove if id(a) not in failed_ids])
    outcome = HotplugOutcome(list(added.values()),
                             [a for a in to_remove if id(a) not in failed_ids])
    outcome.status = _write_status(conf, store, record, pod_obj.annotations, results)
    for att in outcome.added:
        events.interface_added(store, ref, att.ifname, _nad_name(att), att.element)
    if failed:
        msg = "; ".join(e.msg for _, e in failed)
        raise HotplugFailed(f"pod {pod}: {msg}", code=failed[0][1].code)
    return outcome


def _restore_default_routes(conf: MultusConfig, record: engine.PodRecord,
                            removed: Sequence[Attachment]) -> None:
    """An unplugged element took the pod's default route (`default-route`) with it: give
    it back to the first remaining interface whose own result has one (eth0, usually),
    unless another element still asks for that family's default route."""
    families = {ipaddress.ip_address(gw).version for a in removed for gw in a.default_route}
    families -= {ipaddress.ip_address(gw).version for a in record.attachments
                 for gw in a.default_route}
    if not families:
        return
    cached = engine.cached_results(conf, record)
    for version in sorted(families):
        for att, result in zip(record.attachments, cached, strict=True):
            gateways = _default_gateways(result, version) if result else []
            if gateways:
                try:
                    move_default_route(record.netns, att.ifname, gateways[0])
                except CNIError as e:
                    log.error("Unplug: pod %s: the IPv%d default route cannot go back to %s: "
                              "%s", record.pod, version, att.ifname, e.msg)
                break


def _default_gateways(result: Result, version: int) -> list[IPAddress]:
    """Where the result's default routes of one family go: a route's own gateway, else
    (a route without `gw`, as CNI allows) the gateway of the result's address."""
    out: list[IPAddress] = []
    for route in result.routes:
        if route.dst.prefixlen != 0 or route.dst.version != version:
            continue
        if route.gw is not None:
            out.append(route.gw)
        else:
            out += [ip.gateway for ip in result.ips
                    if ip.gateway is not None and ip.gateway.version == version]
    return out


def _nad_name(att: Attachment) -> str:
    """The network as the dynamic-networks controller's events name it: the NAD's name."""
    if att.element is not None:
        return str(att.element.get("name", att.network))
    return att.network.rpartition("/")[2]


def _plan_additions(conf: MultusConfig, store: Store, record: engine.PodRecord,
                    pod_obj: Object, selection: Sequence[NetworkSelection],
                    new_idx: Sequence[int], to_remove: Sequence[Attachment],
                    fixed: Sequence[Attachment]) -> dict[int, Attachment]:
    """The new elements' attachments, named; raises (with an event) before any change."""
    assert record.pod is not None
    pod = record.pod
    ref = (pod.namespace, pod.name)

    def refuse(sels: Sequence[tuple[NetworkSelection, str]], e: CNIError) -> CNIError:
        for sel, ifname in sels:
            events.interface_add_failed(store, ref, ifname, sel.name, sel.to_dict(), e.msg)
        return e.reworded(f"hot-plug refused, the pod is left as it was: {e.msg}")

    kept_names = {a.ifname for a in record.attachments if a not in to_remove}
    # Multus numbers a secondary by its place after defaultNetworks and delegates
    offset = sum(1 for a in fixed if not a.default)
    try:
        for i in new_idx:
            want = selection[i].interface
            if want and want in kept_names:
                owner = next(a for a in record.attachments if a.ifname == want)
                raise naming.DuplicateInterface(
                    f"pod {pod}: interface name {want} is in use by network {owner.network}; "
                    "unplug it first or choose another name")
        names = naming.assign_added_names(
            [selection[i].interface for i in new_idx], [offset + i + 1 for i in new_idx],
            {a.ifname for a in record.attachments}, str(pod))
    except CNIError as e:
        raise refuse([(selection[i], selection[i].interface or "") for i in new_idx],
                     e) from e
    out: dict[int, Attachment] = {}
    for i, name in zip(new_idx, names, strict=True):
        try:
            att = selected_attachment(conf, store, pod, selection[i])
            check_delegate(att, f"pod {pod}")
        except CNIError as e:
            raise refuse([(selection[i], name)], e) from e
        att.ifname = name
        out[i] = att
    # Devices of resource-backed NADs: the pod's allocation, minus what its interfaces use
    assigner = device_assigner(conf, pod_obj)
    assigner.skip({a.device_id for a in record.attachments
                   if a.device_id and a not in to_remove})
    for att in out.values():
        assign_device(att, assigner)
    return out


def _plug(conf: MultusConfig, store: Store, record: engine.PodRecord,
          added: list[Attachment], unplugged_first: list[Attachment],
          original: list[Attachment], path: Sequence[str]) -> dict[int, Result]:
    """ADD the new attachments side by side; on any failure undo all and raise."""
    assert record.pod is not None
    ref = (record.pod.namespace, record.pod.name)
    outcomes = side_by_side.run_each(
        lambda att: engine.attach_one(conf, record, att, path), added)
    error = next(((a, o) for a, o in zip(added, outcomes, strict=True)
                  if isinstance(o, CNIError)), None)
    if error is None:
        try:
            for att in added:
                if att.default_route:
                    engine.apply_default_route(record.netns, att)
        except CNIError as exc:
            error = (att, exc)
    if error is None:
        return {id(a): o for a, o in zip(added, outcomes, strict=True)
                if isinstance(o, Result)}
    culprit, cause = error
    why = engine.prefixed(cause, culprit).msg
    for a in added:
        events.interface_add_failed(store, ref, a.ifname, _nad_name(a), a.element, why)
    # undo: every delegate that ran, the failing ones too (one may allocate, then fail)
    undo = engine.PodRecord(record.container_id, record.netns, record.ifname, record.pod,
                            record.args, list(added))
    left = engine.detach_all(conf, undo, path, "Rollback")
    record.attachments = original + [a for a, _ in left]  # what failed to go: DEL retries
    engine.save_record(conf, record)
    _restore_default_routes(conf, record, added)  # one may have moved it before failing
    for a in unplugged_first:  # unplugged to free a name the failed addition wanted
        try:
            engine.attach_one(conf, record, a, path)
        except CNIError as err:
            log.error("Rollback: %s could not be plugged back: %s",
                      engine.delegate_tag(record, a), err.msg)
    raise cause.reworded(f"pod {record.pod}: hot-plug failed, the pod is left as it was: "
                         f"{why}") from cause


def _unplug(conf: MultusConfig, store: Store, record: engine.PodRecord,
            attachments: list[Attachment],
            path: Sequence[str]) -> list[tuple[Attachment, CNIError]]:
    """DEL the attachments side by side; those that failed, with their error."""
    if not attachments:
        return []
    assert record.pod is not None
    ref = (record.pod.namespace, record.pod.name)
    part = engine.PodRecord(record.container_id, record.netns, record.ifname, record.pod,
                            record.args, list(attachments))
    failed = engine.detach_all(conf, part, path, "Unplug")
    failed_ids = {id(a) for a, _ in failed}
    out: list[tuple[Attachment, CNIError]] = []
    for att in attachments:
        if id(att) in failed_ids:
            e = next(err for a, err in failed if a is att)
            err = engine.prefixed(e, att, "could not be unplugged")
            events.interface_remove_failed(store, ref, att.ifname, _nad_name(att), e.msg)
            out.append((att, err))
        else:
            log.info("Unplug: %s removed", engine.delegate_tag(record, att))
            events.interface_removed(store, ref, att.ifname, _nad_name(att))
    return out


def _write_status(conf: MultusConfig, store: Store, record: engine.PodRecord,
                  annotations: dict[str, str],
                  fresh: dict[int, Result]) -> list[netstatus.NetworkStatus]:
    """network-status for the pod's attachments now: fresh results of the added ones, the
    cached results of the others, else the entries the annotation already had for them."""
    cached = engine.cached_results(conf, record)
    old = netstatus.parse(annotations.get(netstatus.NETWORK_STATUS_ANNOTATION, ""))
    rendered: list[dict[str, object]] = []
    entries: list[netstatus.NetworkStatus] = []
    for att, result in zip(record.attachments, cached, strict=True):
        result = fresh.get(id(att), result)
        if result is None:
            rendered += [e for e in old if e.get("interface") == att.ifname]
            continue
        one = engine.status_entries(
            conf, engine.PodRecord(record.container_id, record.netns, record.ifname,
                                   record.pod, record.args, [att]), [result])
        entries += one
        rendered += [e.to_dict() for e in one]
    engine.write_status(store, record.pod, json.dumps(rendered, indent=4))
    return entries
