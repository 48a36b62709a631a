"""Programming MultiNetworkPolicies on a node: every local attachment, from the store.

:func:`sync` reads the policies, namespaces and pods, resolves what each local attachment
(the engine's records: container, netns, network, interface, plugin type) must let
through, and makes each one's table say exactly that. A table's name ends in a digest of
its rules, so an unchanged interface costs one listing and no write, and a changed one
is replaced in one atomic batch (old name deleted, new name added). Tables of
attachments that are gone (the pod was deleted) are removed from the node; those inside
a pod's namespace go with the namespace.

Callers: the lab after every change that can move a rule (pod run/delete, apply/delete
of a policy, a namespace or its labels), the daemon on its watches' events.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from multihome.attach.engine import PodRecord
from multihome.attach.policy import rules
from multihome.attach.policy.cleanup import tables
from multihome.attach.policy.model import EGRESS, INGRESS, InvalidPolicy, Policy, parse_policy
from multihome.attach.policy.semantics import (
    ContainerPort,
    IPAddress,
    Isolation,
    PeerMemo,
    PodInfo,
    resolve,
)
from multihome.attach.status import NETWORK_STATUS_ANNOTATION, parse
from multihome.cni import cache
from multihome.cni.errors import CNIError
from multihome.net import links, netns, nft, sysctl
from multihome.store import MULTI_POLICY, NAMESPACE, POD, Object, Store

log = logging.getLogger(__name__)
BRIDGE_TYPES = frozenset({"bridge", "cnv-bridge"})
_MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
# br_netfilter's switches: bridged IP traffic must meet the inet hooks (kube-proxy sets
# them too); per network namespace on current kernels.
BR_NF_KEYS = ("net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables")


@dataclass
class SyncReport:
    programmed: list[str] = field(default_factory=list)  # tables written
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)  # node tables removed
    errors: list[str] = field(default_factory=list)  # one line each
    invalid_policies: list[str] = field(default_factory=list)


def pod_info(obj: Object) -> PodInfo:
    """A stored pod as the semantics see it: labels, named ports, addresses per network."""
    addresses: dict[str, list[IPAddress]] = {}
    for entry in parse(obj.annotations.get(NETWORK_STATUS_ANNOTATION, "")):
        name = entry.get("name")
        if not isinstance(name, str):
            continue
        addresses.setdefault(name, [])  # on the network even without an address (a VM's)
        ips = entry.get("ips")
        for text in ips if isinstance(ips, list) else []:
            try:
                addresses.setdefault(name, []).append(ipaddress.ip_address(str(text)))
            except ValueError:
                continue
    ports: list[ContainerPort] = []
    containers = obj.spec.get("containers")
    for c in containers if isinstance(containers, list) else []:
        for p in (c.get("ports") or []) if isinstance(c, dict) else []:
            port = p.get("containerPort") if isinstance(p, dict) else None
            if (isinstance(p, dict) and isinstance(p.get("name"), str)
                    and isinstance(port, int) and not isinstance(port, bool)
                    and 1 <= port <= 65535):  # anyone's pod spec: only real ports
                ports.append(ContainerPort(p["name"], p["containerPort"],
                                           str(p.get("protocol") or "TCP")))
    return PodInfo(obj.namespace, obj.name, dict(obj.labels),
                   {k: tuple(v) for k, v in addresses.items()}, tuple(ports))


def load_policies(store: Store, report: SyncReport | None = None) -> list[Policy]:
    return parse_policies(store.list(MULTI_POLICY, None), report)


def parse_policies(objs: Iterable[Object], report: SyncReport | None = None) -> list[Policy]:
    """Every valid policy; an invalid one (written past admission) is skipped and named."""
    out = []
    for obj in objs:
        try:
            out.append(parse_policy(obj))
        except InvalidPolicy as e:
            if report is not None:
                report.invalid_policies.append(f"{obj.namespace}/{obj.name}: {e}")
    return out


@dataclass(frozen=True)
class World:
    """What the rules are computed from: one store read per sync."""

    policies: list[Policy]
    namespaces: dict[str, dict[str, str]]
    pods: list[PodInfo]
    status: dict[str, list[dict[str, Any]]]  # pod ns/name -> network-status entries
    memo: PeerMemo = field(default_factory=dict, compare=False)  # see semantics.resolve

    @classmethod
    def read(cls, store: Store, report: SyncReport | None = None) -> World:
        return cls.of(store.list(MULTI_POLICY, None), store.list(NAMESPACE, None),
                      store.list(POD, None), report)

    @classmethod
    def of(cls, policies: Iterable[Object], namespaces: Iterable[Object],
           pods: Sequence[Object], report: SyncReport | None = None) -> World:
        """From objects already at hand (the daemon's watch caches)."""
        return cls(parse_policies(policies, report),
                   {o.name: dict(o.labels) for o in namespaces},
                   [pod_info(o) for o in pods],
                   {f"{o.namespace}/{o.name}": parse(
                       o.annotations.get(NETWORK_STATUS_ANNOTATION, "")) for o in pods})


def _plugin_type(conflist: dict[str, Any]) -> str:
    plugins = conflist.get("plugins")
    first = plugins[0] if isinstance(plugins, list) and plugins else conflist
    return str(first.get("type", "")) if isinstance(first, dict) else ""


def _entry(world: World, pod_key: str, network: str, ifname: str) -> dict[str, Any]:
    for e in world.status.get(pod_key, []):
        if e.get("name") == network and e.get("interface") == ifname:
            return e
    return {}


def _cached_veth(cni_dir: str, record: PodRecord, network_name: str, ifname: str) -> str:
    """The node-side veth the bridge plugin reported for the attachment (its result in
    the engine's result cache: the interface without a sandbox that is not the bridge);
    "" when the cache does not say. A file read, where netlink costs a few ms a port."""
    if not cni_dir or not network_name:
        return ""
    try:
        entry = cache.load(cni_dir, network_name, record.container_id, ifname)
    except CNIError:
        return ""
    ifaces = (entry.result or {}).get("interfaces") if entry is not None else None
    host = [i.get("name") for i in ifaces if isinstance(i, dict) and not i.get("sandbox")
            and isinstance(i.get("name"), str)] if isinstance(ifaces, list) else []
    # the bridge comes first, the veth second (the bridge plugin's order)
    return str(host[1]) if len(host) == 2 else ""


def _host_veth(record: PodRecord, ifname: str) -> str:
    """The node-side name of the pod's veth `ifname` ("" when it is not a veth)."""
    with netns.iproute_in(record.netns) as ipr:
        link = links.by_name(ipr, ifname)
    if link is None or link.kind != "veth":
        return ""
    with netns.netlink() as ipr:
        peer = links.by_index(ipr, link.peer_index)
    return peer.name if peer is not None and peer.kind == "veth" else ""


def _digest(*parts: object) -> str:
    """What the rules are made from (never the node's veth name, which is the
    attachment's for its life): equal digests, equal rules."""
    return hashlib.sha256(repr((rules.RENDERING, *parts)).encode()).hexdigest()[:10]


def _commands(target: rules.Target, ingress: Isolation | None, egress: Isolation | None,
              existing: list[str]) -> list[dict[str, Any]]:
    """The batch replacing `existing` by the target's table (old ones go in the same
    transaction the new one appears), or only removing them when nothing is isolated."""
    cmds = [c for t in existing if t != target.table for c in rules.remove(t)]
    if ingress is not None or egress is not None:
        cmds += rules.program(target, ingress, egress)
    return cmds


@dataclass
class _Batch:
    """The node's changes of one pass, written in one transaction: libnftables reads the
    whole ruleset before each JSON batch, so one batch instead of one per port is what
    keeps a pass over 100 ports in milliseconds. On a refusal each part is retried alone,
    so one bad port does not hold back the others and its error names it."""

    parts: list[tuple[str, list[str], list[dict[str, Any]]]] = field(default_factory=list)

    def add(self, who: str, tables_written: list[str], cmds: list[dict[str, Any]]) -> None:
        if cmds:
            self.parts.append((who, tables_written, cmds))

    def run(self, report: SyncReport) -> list[str]:
        """Write everything; the tables of parts that failed (to keep nothing of them)."""
        if not self.parts:
            return []
        try:
            nft.run([c for _, _, cmds in self.parts for c in cmds],
                    what="program MultiNetworkPolicy rules")
        except CNIError:
            failed: list[str] = []
            for who, written, cmds in self.parts:
                try:
                    nft.run(cmds, what=f"program the policy rules of {who}")
                except CNIError as e:
                    report.errors.append(f"{who}: {e}")
                    failed += written
                else:
                    report.programmed += written
            return failed
        for _, written, _ in self.parts:
            report.programmed += written
        return []


def sync(store: Store, records: Sequence[PodRecord], cni_dir: str = "") -> SyncReport:
    """Make every local attachment's rules match the store; remove the node's stale tables.

    `cni_dir` is the engine's (its result cache names the bridge ports)."""
    report = SyncReport()
    return sync_world(World.read(store, report), records, report, cni_dir)


def sync_world(world: World, records: Sequence[PodRecord],
               report: SyncReport | None = None, cni_dir: str = "") -> SyncReport:
    """:func:`sync` from a world already read."""
    report = report if report is not None else SyncReport()
    by_key = {p.key: p for p in world.pods}
    keep: set[str] = set()
    try:
        on_node = tables(rules.TABLE_PREFIX)  # one listing for every bridge port
    except CNIError as e:
        report.errors.append(f"node tables: {e}")
        return report
    batch = _Batch()
    for record in records:
        if record.pod is None:
            continue
        key = f"{record.pod.namespace}/{record.pod.name}"
        pod = by_key.get(key)
        for att in record.attachments:
            if att.default or pod is None:
                continue
            prefix = rules.table_name(record.container_id, att.ifname)
            existing = [t for t in on_node if t.startswith(prefix)]
            who = f"{key} {att.ifname} ({att.network})"
            try:
                name = _sync_attachment(world, pod, record, att.network, att.ifname,
                                        _plugin_type(att.conflist), existing, batch, who,
                                        report, partial(
                                            _cached_veth, cni_dir, record,
                                            str(att.conflist.get("name", "")), att.ifname))
            except (CNIError, OSError) as e:
                report.errors.append(f"{who}: {e}")
                keep.update(existing)  # keep what is there: a failure must not open a port
                continue
            if name:
                keep.add(name)
    keep -= set(batch.run(report))
    # only tables of the containers given: another lab's on this node are not ours
    ours = {rules.container_prefix(r.container_id) for r in records}
    stale = [t for t in tables(rules.TABLE_PREFIX)
             if t not in keep and t[:len(rules.TABLE_PREFIX) + 13] in ours]
    if stale:
        try:
            nft.run([c for t in stale for c in rules.remove(t)],
                    what="remove the policy rules of deleted attachments")
            report.removed += stale
        except CNIError as e:
            report.errors.append(f"node tables: {e}")
    return report


def _sync_attachment(world: World, pod: PodInfo, record: PodRecord, network: str,
                     ifname: str, plugin_type: str, existing: list[str], batch: _Batch,
                     who: str, report: SyncReport, cached_veth: Callable[[], str]
                     ) -> str | None:
    """Plan (bridge port: into `batch`) or program (in the pod) one attachment; the node
    table name it uses (None: none on the node)."""
    ingress = resolve(world.policies, pod, network, INGRESS, world.pods, world.namespaces,
                      world.memo)
    egress = resolve(world.policies, pod, network, EGRESS, world.pods, world.namespaces,
                     world.memo)
    table = rules.table_name(record.container_id, ifname)
    isolated = ingress is not None or egress is not None
    if plugin_type in BRIDGE_TYPES:
        mac = str(_entry(world, pod.key, network, ifname).get("mac") or "").lower()
        if not _MAC_RE.fullmatch(mac):
            mac = ""  # the annotation is anyone's text: match the addresses only
        addrs = pod.addresses.get(network, ())
        name = f"{table}_{_digest(rules.PORT, ingress, egress, mac, addrs)}"
        if not isolated:
            batch.add(who, existing, _commands(rules.Target(rules.PORT, name, ifname), None,
                                               None, existing))
            return None
        if existing == [name]:
            report.unchanged += 1
            return name
        veth = cached_veth() or _host_veth(record, ifname)
        if not veth:
            raise CNIError(f"the node side of {ifname} is not found")
        for key in BR_NF_KEYS:
            sysctl.write_best_effort(key, "1")
        batch.add(who, [name], _commands(rules.Target(rules.PORT, name, veth, mac, addrs),
                                         ingress, egress, existing))
        return name
    name = f"{table}_{_digest(rules.POD, ingress, egress, ifname)}"
    with netns.entered(record.netns):  # nft keeps nothing open here once it returns
        in_pod = tables(table)
        if in_pod == [name] and isolated:
            report.unchanged += 1
        elif isolated or in_pod:
            cmds = _commands(rules.Target(rules.POD, name, ifname), ingress, egress, in_pod)
            nft.run(cmds, what=f"program the policy rules of {who}")
            report.programmed += [name] if isolated else in_pod
    return None


__all__ = ["SyncReport", "World", "isolation_of", "load_policies", "pod_info",
           "sync", "sync_world"]


def isolation_of(world: World, pod: PodInfo, network: str) -> str:
    """"ingress", "egress", "ingress+egress" or "" (open): how the pod's attachment to
    `network` is isolated (the topology picture and the console mark these)."""
    return "+".join(d.lower() for d in (INGRESS, EGRESS)
                    if resolve(world.policies, pod, network, d, world.pods,
                               world.namespaces, world.memo) is not None)
