"""The attachment engine: what Multus does for one pod, on any Store.

ADD plans every attachment, runs the default network's delegate, then the others side by
side (side_by_side.py says why), and undoes all of them when any fails; results, network-status
and default routes follow the plan's order. Each pod's attachment list is kept in
`<cniDir>/multihome/<containerID>.json`, written *before* each delegate runs, so
that DEL, CHECK and GC work from the cache alone: when the NAD, the pod or the store
are gone, or after a crash in the middle of an ADD.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from multihome.attach import devices, events, side_by_side
from multihome.attach import status as netstatus
from multihome.attach.logs import log
from multihome.attach.multus_config import MultusConfig
from multihome.attach.naming import DEFAULT_IFNAME
from multihome.attach.plan import (
    LEGACY_ARGS,
    Attachment,
    PodRef,
    default_network,
    plan,
    plugin_capabilities,
)
from multihome.attach.policy import cleanup as policy_cleanup
from multihome.cni import cache, jsontext, runtime
from multihome.cni.errors import (
    CNIError,
    InvalidEnvironment,
    IOFailure,
    NotAvailable,
    UnknownContainer,
)
from multihome.cni.result import Result
from multihome.ipam import whereabouts as cluster_ipam
from multihome.net import link_batch
from multihome.plugins.registry import IN_PROCESS
from multihome.shim import ENGINE_TYPES
from multihome.store import POD, NotFound, Store
from multihome.store.pools import ObjectPools, pool_namespace
from multihome.store.sqlite import SQLiteStore

CACHE_KIND = "multihomeAttachmentsV1"

# What runs the delegates of configs parsed in this process (engine_plugin): the
# registry's in-process executor unless the host wraps it; the daemon times every
# delegate for /metrics with registry.Observed. Tests inject theirs into MultusConfig.
_executor: runtime.Executor = IN_PROCESS


def use_executor(executor: runtime.Executor) -> None:
    global _executor
    _executor = executor


def current_executor() -> runtime.Executor:
    return _executor


@dataclass
class PodRequest:
    """One engine call: the runtime's view (container, netns, ifname) and the pod."""

    container_id: str
    netns: str
    pod: PodRef | None = None
    ifname: str = DEFAULT_IFNAME
    # extra CNI_ARGS pairs passed through to every delegate (K8S_* are added here)
    args: list[tuple[str, str]] = field(default_factory=list)

    def delegate_args(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = [("IgnoreUnknown", "true")]
        if self.pod is not None:
            pairs += [("K8S_POD_NAMESPACE", self.pod.namespace),
                      ("K8S_POD_NAME", self.pod.name),
                      ("K8S_POD_INFRA_CONTAINER_ID", self.container_id)]
        taken = {k for k, _ in pairs}
        return pairs + [(k, v) for k, v in self.args if k not in taken]


@dataclass
class PodRecord:
    """What the engine remembers of one container (the engine's cache file)."""

    container_id: str
    netns: str
    ifname: str
    pod: PodRef | None
    args: list[tuple[str, str]]
    attachments: list[Attachment] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": CACHE_KIND, "containerID": self.container_id, "netns": self.netns,
            "ifname": self.ifname,
            "pod": {"namespace": self.pod.namespace, "name": self.pod.name} if self.pod else None,
            "args": [list(p) for p in self.args],
            "attachments": [a.to_json() for a in self.attachments],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PodRecord:
        pod = data.get("pod")
        return cls(
            str(data["containerID"]), str(data.get("netns", "")),
            str(data.get("ifname", DEFAULT_IFNAME)),
            PodRef(str(pod["namespace"]), str(pod["name"])) if isinstance(pod, dict) else None,
            [(str(k), str(v)) for k, v in data.get("args", [])],
            [Attachment.from_json(a) for a in data.get("attachments", [])],
        )


# -- the engine's cache ------------------------------------------------------

def record_dir(conf: MultusConfig) -> str:
    return records_dir_in(conf.cni_dir)


def records_dir_in(cni_dir: str) -> str:
    """Where the engine keeps its records under a CNI cache dir."""
    return os.path.join(cni_dir, "multihome")


def record_path(conf: MultusConfig, container_id: str) -> str:
    return os.path.join(record_dir(conf), f"{container_id}.json")


def save_record(conf: MultusConfig, record: PodRecord) -> None:
    path = record_path(conf, record.container_id)
    try:
        cache.write_private(path, json.dumps(record.to_json()).encode())
    except (OSError, ValueError, RecursionError) as e:
        raise IOFailure(f"cannot write the attachment cache {path}", str(e)) from e


def load_record(conf: MultusConfig, container_id: str) -> PodRecord | None:
    return _load_record_file(record_path(conf, container_id))


def _load_record_file(path: str) -> PodRecord | None:
    try:
        with open(path, "rb") as f:
            data = jsontext.loads(f.read(), f"attachment cache {path}")
        return PodRecord.from_json(data) if data.get("kind") == CACHE_KIND else None
    except FileNotFoundError:
        return None
    except (OSError, CNIError, ValueError, KeyError, TypeError, AttributeError):
        # a corrupt record is as good as none: DEL falls back to the result caches
        return None


def drop_record(conf: MultusConfig, container_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record_path(conf, container_id))


def list_records(conf: MultusConfig) -> list[PodRecord]:
    return records_in(conf.cni_dir)


def records_in(cni_dir: str) -> list[PodRecord]:
    """Every container the engine holds on this node (its records under `cni_dir`)."""
    out: list[PodRecord] = []
    where = records_dir_in(cni_dir)
    try:
        names = sorted(os.listdir(where))
    except FileNotFoundError:
        return out
    for fname in names:
        if fname.endswith(".json"):
            rec = _load_record_file(os.path.join(where, fname))
            if rec is not None:
                out.append(rec)
    return out


# -- helpers ---------------------------------------------------------------

def cni_path(conf: MultusConfig, extra: Sequence[str] = ()) -> list[str]:
    seen: list[str] = []
    for p in [*extra, *conf.bin_dirs]:
        if p and p not in seen:
            seen.append(p)
    return seen


def runtime_conf(conf: MultusConfig, record: PodRecord, att: Attachment,
                 netns: str | None = None) -> runtime.RuntimeConf:
    return runtime.RuntimeConf(
        container_id=record.container_id,
        netns=record.netns if netns is None else netns,
        ifname=att.ifname,
        args=list(record.args) + _legacy_args(record, att),
        capability_args=dict(att.capability_args),
        cache_dir=conf.cni_dir,
    )


def _legacy_args(record: PodRecord, att: Attachment) -> list[tuple[str, str]]:
    """A requested MAC and IPs as the legacy CNI_ARGS `MAC=` / `IP=`, which Multus adds for
    every delegate (DelegateAdd) besides runtimeConfig: plugins without the `mac`/`ips`
    capability (the reference bridge, static and host-local read CNI_ARGS) honour them
    too. IgnoreUnknown, as runtimes always send it, keeps the others from refusing them."""
    out: list[tuple[str, str]] = []
    mac, ips = att.capability_args.get("mac"), att.capability_args.get("ips")
    if mac:
        out.append((LEGACY_ARGS["mac"], str(mac)))
    if ips:
        out.append((LEGACY_ARGS["ips"], ",".join(str(ip) for ip in ips)))
    if out and not any(k == "IgnoreUnknown" for k, _ in record.args):
        out.insert(0, ("IgnoreUnknown", "1"))
    return out


def _label(att: Attachment) -> str:
    return f"network {att.network} (interface {att.ifname})"


def prefixed(e: CNIError, att: Attachment, what: str = "failed") -> CNIError:
    out = e.reworded(f"{_label(att)} {what}: {e.msg}")
    log.error("%s", out.msg)
    return out


def delegate_tag(record: PodRecord, att: Attachment) -> str:
    """Multus' tag for a delegate call: namespace:pod:container:network:ifname."""
    pod = f"{record.pod.namespace}:{record.pod.name}" if record.pod else "-:-"
    return f"{pod}:{record.container_id}:{att.network}:{att.ifname}"


def apply_default_route(netns: str, att: Attachment) -> None:
    from multihome.net.default_route import move_default_route

    for gw in att.default_route:
        move_default_route(netns, att.ifname, ipaddress.ip_address(gw))


def _cni_info_path(conf: MultusConfig, record: PodRecord, att: Attachment) -> str:
    return devices.cni_info_path(conf.device_info_dir, att.network, record.container_id,
                                 att.ifname)


def prepare_device_info(conf: MultusConfig, record: PodRecord, att: Attachment) -> None:
    """A delegate that declares CNIDeviceInfoFile gets the device plugin's info there.

    The path goes into the cached attachment too: DEL passes the same runtimeConfig.
    """
    if not att.device_id or devices.DEVICE_INFO_CAPABILITY not in plugin_capabilities(
            att.conflist):
        return
    path = _cni_info_path(conf, record, att)
    try:
        devices.hand_over(devices.dp_info_path(conf.device_info_dir, att.resource,
                                               att.device_id), path)
    except OSError as e:
        raise IOFailure(f"cannot write the device-info file {path}", str(e)) from e
    att.capability_args[devices.DEVICE_INFO_CAPABILITY] = path
    save_record(conf, record)


def _device_info(conf: MultusConfig, record: PodRecord,
                 att: Attachment) -> dict[str, Any] | None:
    """What the delegate wrote to its device-info file, else the device plugin's."""
    if not att.device_id:
        return None
    return (devices.load_info(_cni_info_path(conf, record, att))
            or devices.load_info(devices.dp_info_path(conf.device_info_dir, att.resource,
                                                      att.device_id)))


def write_status(store: Store | None, pod: PodRef | None, value: str | None) -> None:
    if store is None or pod is None:
        return
    with contextlib.suppress(NotFound):
        store.patch_annotations(POD, pod.namespace, pod.name,
                                {netstatus.NETWORK_STATUS_ANNOTATION: value})


def _clear_status(store: Store | None, pod: PodRef | None) -> None:
    """DEL's status clean-up: never a reason for DEL to fail (the store may be down)."""
    try:
        write_status(store, pod, None)
    except Exception as e:  # any store, any failure: the attachments are gone already
        log.error("cannot clear the network-status of pod %s: %s: %s", pod,
                  type(e).__name__, e)


# -- operations --------------------------------------------------------------

def attach_one(conf: MultusConfig, record: PodRecord, att: Attachment,
               path: Sequence[str]) -> Result:
    """ADD of one delegate into the record's netns (the record already names it)."""
    log.debug("Add: %s: %s", delegate_tag(record, att), json.dumps(att.conflist))
    prepare_device_info(conf, record, att)
    net = runtime.parse_network_config(att.conflist)
    return runtime.add_network_list(net, runtime_conf(conf, record, att), path,
                                    conf.executor)


def cached_results(conf: MultusConfig, record: PodRecord) -> list[Result | None]:
    """The cached ADD result of each attachment of the record, None where there is none."""
    out: list[Result | None] = []
    for att in record.attachments:
        try:
            out.append(runtime.cached_result(runtime.parse_network_config(att.conflist),
                                             runtime_conf(conf, record, att)))
        except CNIError:
            out.append(None)
    return out


@dataclass
class AddOutcome:
    result: Result  # the default network's result, as Multus returns it
    status: list[netstatus.NetworkStatus]
    attachments: list[Attachment]


def _add(conf: MultusConfig, store: Store | None, req: PodRequest,
        extra_path: Sequence[str] = ()) -> AddOutcome:
    """Attach every network of the pod; on any failure undo and raise the delegate's error.

    A container that already has attachments is never touched: the same ADD again gets
    the cached result (a runtime retrying after a lost reply), anything else an error.
    """
    existing = load_record(conf, req.container_id)
    if existing is not None:
        return _repeated_add(conf, existing, req)
    planned = plan(conf, store, req.pod, req.ifname)
    path = cni_path(conf, extra_path)
    record = PodRecord(req.container_id, req.netns, req.ifname, req.pod, req.delegate_args(),
                       list(planned))
    # before any delegate runs: a DEL or GC after a crash in the middle finds every one
    save_record(conf, record)

    def attach(att: Attachment) -> Result:
        return attach_one(conf, record, att, path)

    # The default network alone first, as Multus does: eth0 keeps the pod's lowest
    # interface index, and a secondary may rely on it being there.
    outcomes = side_by_side.run_each(attach, planned[:1])
    if not isinstance(outcomes[0], CNIError):
        outcomes += side_by_side.run_each(attach, planned[1:])
    attempted = planned[:len(outcomes)]

    def undo(att: Attachment, e: CNIError) -> NoReturn:
        # every delegate that ran, the failing ones too: one may allocate before it fails
        record.attachments = attempted
        _rollback(conf, record, path)
        raise prefixed(e, att) from e

    for att, outcome in zip(attempted, outcomes, strict=True):
        if isinstance(outcome, CNIError):
            undo(att, outcome)
    results = [o for o in outcomes if not isinstance(o, CNIError)]
    # in plan order, once every interface exists: the last one asking wins
    for att in planned:
        if att.default_route:
            try:
                apply_default_route(req.netns, att)
            except CNIError as e:
                undo(att, e)
    for att, result in zip(planned, results, strict=True):
        log.info("Add: %s: %s", delegate_tag(record, att), json.dumps(result.to_dict()))
        events.added_interface(store, (req.pod.namespace, req.pod.name) if req.pod else None,
                               att.ifname, att.network, result)
    entries = status_entries(conf, record, results)
    # the plan always starts with the default network
    write_status(store, req.pod, netstatus.render(entries))
    return AddOutcome(results[0], entries, planned)


def status_entries(conf: MultusConfig, record: PodRecord,
                    results: Sequence[Result]) -> list[netstatus.NetworkStatus]:
    entries: list[netstatus.NetworkStatus] = []
    for att, result in zip(record.attachments, results, strict=True):
        gateways = att.default_route or netstatus.gateways_of(result)
        entries += netstatus.entries_from_result(att.network, att.ifname, result,
                                                 default=att.default, gateways=gateways,
                                                 device_info=_device_info(conf, record, att))
    return entries


def _repeated_add(conf: MultusConfig, record: PodRecord, req: PodRequest) -> AddOutcome:
    """ADD for a container the engine already holds: the cached outcome, or an error."""
    who = f"container {req.container_id}"
    if record.ifname != req.ifname:
        raise InvalidEnvironment(
            f"{who} already has multihome attachments under interface {record.ifname}; "
            f"DEL them before adding interface {req.ifname}")
    cached = cached_results(conf, record)
    results = [r for r in cached if r is not None]
    if not results or len(results) != len(record.attachments):
        raise InvalidEnvironment(
            f"{who} ({req.ifname}) is already being attached, or an earlier ADD of it did "
            "not complete; DEL it before adding it again")
    log.info("Add: %s is already attached: the cached result is returned", who)
    return AddOutcome(results[0], status_entries(conf, record, results),
                      record.attachments)


def detach_all(conf: MultusConfig, record: PodRecord, path: Sequence[str], what: str,
                netns: str | None = None) -> list[tuple[Attachment, CNIError]]:
    """DEL of every attachment of the record, side by side; the ones that failed."""

    attachments = list(reversed(record.attachments))
    with link_batch.coalesced(len(attachments)) as batch:

        def detach(att: Attachment) -> None:
            try:
                log.info("%s: %s", what, delegate_tag(record, att))
                net = runtime.parse_network_config(att.conflist)
                runtime.del_network_list(net, runtime_conf(conf, record, att, netns), path,
                                         conf.executor)
                devices.forget(_cni_info_path(conf, record, att))
            finally:
                if batch is not None:
                    batch.leave()  # the others no longer wait for a link of this one

        outcomes = side_by_side.run_each(detach, attachments)
    return [(att, o) for att, o in zip(attachments, outcomes, strict=True)
            if isinstance(o, CNIError)]


def _rollback(conf: MultusConfig, record: PodRecord, path: Sequence[str]) -> None:
    failed = detach_all(conf, record, path, "Rollback")
    if failed:
        # keep what could not be undone, so that a later DEL or GC retries it
        record.attachments = [att for att in record.attachments
                              if any(att is f for f, _ in failed)]
        save_record(conf, record)
    else:
        drop_record(conf, record.container_id)


class DeleteFailed(CNIError):
    """At least one delegate DEL failed; every attachment was still tried."""


def _delete(conf: MultusConfig, store: Store | None, req: PodRequest,
           extra_path: Sequence[str] = ()) -> None:
    """Detach every cached attachment in reverse; idempotent, collects every error."""
    path = cni_path(conf, extra_path)
    record = load_record(conf, req.container_id)
    if record is None:
        record = _record_without_cache(conf, store, req)
    netns = record.netns or req.netns
    if not netns or not os.path.exists(netns):
        netns = ""  # plugins skip their in-pod cleanup, host-side objects still go
    errors = [prefixed(e, att, "could not be removed")
              for att, e in detach_all(conf, record, path, "Del", netns)]
    if not errors or not conf.retry_delete_on_error:
        drop_record(conf, req.container_id)
    _forget_policy_rules(req.container_id)
    _clear_status(store, record.pod or req.pod)
    if errors:
        msg = "; ".join(e.msg for e in errors)
        raise DeleteFailed(f"DEL of container {req.container_id} failed: {msg}",
                           code=errors[0].code)


def _forget_policy_rules(container_id: str) -> None:
    # the node-side MultiNetworkPolicy tables of the container (bridge ports) go with it;
    # a failure here is logged, not a failed DEL: the next policy sync removes them
    try:
        policy_cleanup.forget(container_id)
    except CNIError as e:
        log.warning("cannot remove the policy rules of %s: %s", container_id, e)


def _record_without_cache(conf: MultusConfig, store: Store | None,
                          req: PodRequest) -> PodRecord:
    """The attachments to try when the engine's record is lost.

    First what the plugin result caches (libcni's layout, in cniDir) still name for the
    container: each holds the config it was added with. Then what the store describes,
    else the default network: those DELs are harmless when nothing is there.
    """
    record = PodRecord(req.container_id, req.netns, req.ifname, req.pod, req.delegate_args())
    cached = [att for _, att in _result_cache(conf, req.container_id)]
    try:
        planned = plan(conf, store, req.pod, req.ifname)
    except Exception:  # a broken store is one more reason to use the cache
        try:
            planned = [default_network(conf, None, None, req.pod)]
            planned[0].ifname = req.ifname
        except Exception:  # nor the default network: the cache alone
            planned = []
    have = {(a.network_name, a.ifname) for a in cached}
    record.attachments = cached + [a for a in planned
                                   if (a.network_name, a.ifname) not in have]
    return record


def _result_cache(conf: MultusConfig,
                  container_id: str | None = None) -> list[tuple[cache.CacheEntry, Attachment]]:
    """Each readable result-cache entry (of one container, or all) and its attachment."""
    out: list[tuple[cache.CacheEntry, Attachment]] = []
    try:
        entries = cache.list_entries(conf.cni_dir, container_id)
    except CNIError:
        return out
    for entry in entries:
        try:
            conflist = jsontext.loads(entry.config, "cached network config")
        except CNIError:
            continue
        if isinstance(conflist, dict) and not _is_engine(conflist):
            out.append((entry, Attachment(entry.network_name, entry.ifname, conflist,
                                          capability_args=dict(entry.capability_args))))
    return out


def _is_engine(conflist: dict[str, Any]) -> bool:
    """An engine's own attachment (a runtime's cache in a shared cniDir): deleting it
    from here would run this very engine again for the same container."""
    plugins = conflist.get("plugins")
    parts = plugins if isinstance(plugins, list) else [conflist]
    return any(isinstance(p, dict) and p.get("type") in ENGINE_TYPES for p in parts)


def check(conf: MultusConfig, req: PodRequest, extra_path: Sequence[str] = ()) -> None:
    record = load_record(conf, req.container_id)
    if record is None:
        raise UnknownContainer(f"no attachments cached for container {req.container_id}")
    path = cni_path(conf, extra_path)
    for att in record.attachments:
        try:
            net = runtime.parse_network_config(att.conflist)
            runtime.check_network_list(net, runtime_conf(conf, record, att, req.netns), path,
                                       conf.executor)
        except CNIError as e:
            raise prefixed(e, att, "check failed") from e


def _status(conf: MultusConfig, store: Store | None, extra_path: Sequence[str] = ()) -> None:
    """Ready when the default network's plugins are and the readiness indicator exists."""
    if conf.readiness_indicator_file and not os.path.exists(conf.readiness_indicator_file):
        raise NotAvailable(
            f"default network not ready: readiness indicator file "
            f"{conf.readiness_indicator_file} does not exist"
        )
    att = default_network(conf, store, None, None)
    try:
        runtime.status_network_list(runtime.parse_network_config(att.conflist),
                                    cni_path(conf, extra_path), conf.executor)
    except CNIError as e:
        raise type(e)(f"default network {att.network} not ready: {e.msg}", e.details,
                      code=e.code) from e


def _gc(conf: MultusConfig, store: Store | None, valid: Sequence[dict[str, Any]],
       extra_path: Sequence[str] = ()) -> None:
    """DEL every cached pod not in `valid` (`{containerID, ifname}`), then GC each delegate.

    Works without the store (a broken one is ignored): the engine's records, and for
    containers whose record was lost the plugin result caches, say what to delete.
    """
    keep = {(str(a.get("containerID")), str(a.get("ifname"))) for a in valid}
    path = cni_path(conf, extra_path)
    errors: list[CNIError] = []
    live: list[PodRecord] = []
    for record in list_records(conf):
        if (record.container_id, record.ifname) in keep:
            live.append(record)
            continue
        log.info("GC: container %s is not among the valid attachments", record.container_id)
        try:
            _delete(conf, None, PodRequest(record.container_id, record.netns, record.pod,
                                          record.ifname), extra_path)
        except CNIError as e:
            errors.append(e)
    valid_containers = {cid for cid, _ in keep} | {r.container_id for r in live}
    for cached, stale in _result_cache(conf):
        if cached.container_id in valid_containers:
            continue
        log.info("GC: %s of container %s has a cached result and no engine record",
                 stale.network_name, cached.container_id)
        netns = cached.netns if cached.netns and os.path.exists(cached.netns) else ""
        rt = runtime.RuntimeConf(cached.container_id, netns, cached.ifname,
                                 list(cached.cni_args), dict(cached.capability_args),
                                 conf.cni_dir)
        try:
            runtime.del_network_list(runtime.parse_network_config(stale.conflist), rt, path,
                                     conf.executor)
        except CNIError as e:
            errors.append(type(e)(f"stale {stale.network_name} attachment {cached.ifname} of "
                                  f"container {cached.container_id}: {e.msg}", e.details,
                                  code=e.code))
    # each delegate network, with the attachments it still serves
    networks: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    try:
        att = default_network(conf, store, None, None)
    except Exception:  # no default (or no store): GC what the records name
        pass
    else:
        networks[att.network_name] = (att.conflist, [])
    for record in live:
        for att in record.attachments:
            entry = networks.setdefault(att.network_name, (att.conflist, []))
            entry[1].append({"containerID": record.container_id, "ifname": att.ifname})
    for conflist, attachments in networks.values():
        try:
            runtime.gc_network_list(runtime.parse_network_config(conflist), attachments, path,
                                    conf.cni_dir, conf.executor)
        except CNIError as e:
            errors.append(e)
    if errors:
        raise DeleteFailed("GC failed: " + "; ".join(e.msg for e in errors),
                           code=errors[0].code)


# The cluster-wide IPAM keeps its pools in the engine's store (the lab's SQLite file, or
# the Kubernetes API): bound for the delegates of each call, which run in this thread or
# in side_by_side's (which copy the context). With a remote store, the allocations inside
# a node's slices go to a SQLite file of the node's own: no API write per pod for them.
LOCAL_POOLS_FILE = "multihome-pools.db"


@contextlib.contextmanager
def pools_bound(conf: MultusConfig, store: Store | None) -> Iterator[None]:
    if store is None:
        yield
        return
    local = "" if isinstance(store, SQLiteStore) else os.path.join(conf.cni_dir,
                                                                    LOCAL_POOLS_FILE)
    with cluster_ipam.bound(ObjectPools(store, pool_namespace()), local_path=local):
        yield


def add(conf: MultusConfig, store: Store | None, req: PodRequest,
        extra_path: Sequence[str] = ()) -> AddOutcome:
    """Attach every network of the pod; on any failure undo and raise the delegate's error.

    A container that already has attachments is never touched: the same ADD again gets
    the cached result (a runtime retrying after a lost reply), anything else an error.
    """
    with pools_bound(conf, store):
        return _add(conf, store, req, extra_path)


def delete(conf: MultusConfig, store: Store | None, req: PodRequest,
           extra_path: Sequence[str] = ()) -> None:
    """Detach every cached attachment in reverse; idempotent, collects every error."""
    with pools_bound(conf, store):
        _delete(conf, store, req, extra_path)


def status(conf: MultusConfig, store: Store | None, extra_path: Sequence[str] = ()) -> None:
    """Ready when the default network's plugins are and the readiness indicator exists."""
    with pools_bound(conf, store):
        _status(conf, store, extra_path)


def gc(conf: MultusConfig, store: Store | None, valid: Sequence[dict[str, Any]],
       extra_path: Sequence[str] = ()) -> None:
    """DEL every cached pod not in `valid` (`{containerID, ifname}`), then GC each delegate."""
    with pools_bound(conf, store):
        _gc(conf, store, valid, extra_path)
