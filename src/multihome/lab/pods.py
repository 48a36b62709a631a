"""Lab pods: a Pod object in the store plus a network namespace, wired by the engine.

A pod's namespace is `mh-<ns>-<name>` and its container ID is derived from ns/name,
so `delete` finds every part again even when the store object, the netns or the
cache is already gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from multihome.attach import engine
from multihome.attach import hotplug as attach_hotplug
from multihome.attach.multus_config import parse_multus_config
from multihome.attach.plan import NETWORKS_ANNOTATION, PodRef, plan
from multihome.attach.policy.model import PROTOCOLS, svc_name_problem
from multihome.errors import MultihomeError
from multihome.lab import dhcp as labdhcp
from multihome.lab import policies
from multihome.lab.settings import LabSettings
from multihome.net import addr, links, netns
from multihome.store import POD, AlreadyExists, Conflict, NotFound, Object, Store, names
from multihome.store.events import EVENT, events_of
from multihome.vm import launcher

Progress = Callable[[str], None]


class PodError(MultihomeError):
    """A lab pod operation failed; the message is for the person at the terminal (one of
    multihome's errors, so that every caller that reports those reports it too)."""


class LauncherPodInUse(PodError):
    """The pod is the launcher of a VM whose qemu runs: deleting only the pod would leave
    qemu running with its NICs' other ends gone. `vm` names the VM to delete instead."""

    def __init__(self, namespace: str, pod: str, vm: str) -> None:
        super().__init__(f'pod "{pod}" is the launcher of running VM "{vm}" in namespace '
                         f'"{namespace}": run "multihome vm delete {vm} -n {namespace}" '
                         "(or pod delete --force, which deletes the VM first)")
        self.namespace, self.pod, self.vm = namespace, pod, vm


def _quiet(_: str) -> None:
    pass


def netns_name(namespace: str, name: str) -> str:
    """`mh-<ns>-<name>`: a file name under /var/run/netns, so both parts must be valid
    names (a `/` or `..` in either would put the namespace's bind mount elsewhere)."""
    try:
        names.check_namespace(namespace)
        names.check_name(name, "pod name")
    except names.InvalidName as e:
        raise PodError(str(e)) from None
    return f"mh-{namespace}-{name}"


def netns_path(namespace: str, name: str) -> str:
    return netns.named_path(netns_name(namespace, name))


def container_id(namespace: str, name: str) -> str:
    return "mh" + hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:30]


@dataclass(frozen=True)
class GuestAddress:
    """An address the lab sets inside the pod after attach, as a VM guest would
    configure one on a NIC whose NAD has no IPAM. It is not a CNI result."""

    ifname: str
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface

    @classmethod
    def parse(cls, text: str) -> GuestAddress:
        ifname, sep, cidr = text.partition("=")
        try:
            if not sep or not ifname:
                raise ValueError
            return cls(ifname, ipaddress.ip_interface(cidr))
        except ValueError as e:
            raise PodError(f"invalid address {text!r}: expected IFNAME=ADDRESS/PREFIX, "
                           "e.g. net1=10.250.0.10/24") from e


def _request(namespace: str, name: str) -> engine.PodRequest:
    return engine.PodRequest(container_id(namespace, name), netns_path(namespace, name),
                             PodRef(namespace, name))


@dataclass(frozen=True)
class ContainerPort:
    """A named container port (`--port http=8080/TCP`): what named ports in policies mean."""

    name: str
    port: int
    protocol: str = "TCP"

    @classmethod
    def parse(cls, text: str) -> ContainerPort:
        name, sep, rest = text.partition("=")
        number, _, proto = rest.partition("/")
        proto = proto.upper() or "TCP"
        problem = svc_name_problem(name) if sep else "expected NAME=PORT[/PROTOCOL]"
        if problem is None and not (number.isdigit() and 1 <= int(number) <= 65535):
            problem = "the port must be a number from 1 to 65535"
        if problem is None and proto not in PROTOCOLS:
            problem = "the protocol must be TCP, UDP or SCTP"
        if problem:
            raise PodError(f"invalid port {text[:80]!r}: {problem}")
        return cls(name, int(number), proto)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "containerPort": self.port, "protocol": self.protocol}


def _pod_object(namespace: str, name: str, annotations: dict[str, str],
                labels: dict[str, str] | None = None,
                ports: Sequence[ContainerPort] = ()) -> Object:
    container: dict[str, Any] = {"name": name}
    if ports:
        container["ports"] = [p.to_json() for p in ports]
    meta: dict[str, Any] = {"name": name, "namespace": namespace,
                            "annotations": dict(annotations)}
    if labels:
        meta["labels"] = dict(labels)
    return Object(POD, name, namespace, {
        "apiVersion": "v1",
        "kind": POD,
        "metadata": meta,
        "spec": {"nodeName": socket.gethostname(), "containers": [container]},
        "status": {"phase": "Pending"},
    })


def _set_status(store: Store, namespace: str, name: str, status: dict[str, Any]) -> None:
    obj = store.get(POD, namespace, name)
    obj.body["status"] = status
    store.update(obj)


def _set_guest_address(path: str, guest: GuestAddress) -> None:
    with netns.iproute_in(path) as ipr:
        link = links.by_name(ipr, guest.ifname)
        if link is None:
            raise PodError(f"cannot set {guest.address}: the pod has no interface "
                           f"{guest.ifname}")
        addr.add_address(ipr, link.index, guest.address, nodad=True, ifname=guest.ifname)


def run(store: Store, settings: LabSettings, namespace: str, name: str,
        annotations: dict[str, str], guest_addresses: Sequence[GuestAddress] = (),
        progress: Progress = _quiet, labels: dict[str, str] | None = None,
        ports: Sequence[ContainerPort] = ()) -> engine.AddOutcome:
    """Create the pod and attach its networks; on failure nothing of it is left."""
    labdhcp.use(settings)  # a `dhcp` IPAM's leases live in the lab's daemon
    conf = parse_multus_config(settings.engine_config())
    pod = f"{namespace}/{name}"
    try:
        store.create(_pod_object(namespace, name, annotations, labels, ports))
    except AlreadyExists as e:
        raise PodError(f'pods "{name}" already exists in namespace "{namespace}"') from e
    path = ""
    try:
        # refuse a bad selection, an unknown NAD or isolation before touching the kernel
        attachments = plan(conf, store, PodRef(namespace, name))
        # the scheduling rule a cluster would apply (bridge-marker resources); the lab
        # setting node_resources says whether to refuse or only warn (see settings.py)
        from multihome.node.resources import MissingNodeResource, require_for_networks

        try:
            require_for_networks(store, [a.network for a in attachments if not a.default], pod)
        except MissingNodeResource as e:
            if settings.node_resources == "strict":
                raise
            progress(f"warning: {e}; running it anyway (lab setting node_resources=warn; "
                     "`multihome lab up --node-resources strict` refuses such pods)")
    except MultihomeError as e:
        _cleanup_after_failure(store, namespace, name, path)
        raise PodError(str(e)) from e
    progress(f"pod/{name} created in namespace {namespace}")
    try:
        path = netns.create_named(netns_name(namespace, name))
        with netns.iproute_in(path) as ipr:
            lo = links.by_name(ipr, "lo")
            if lo is not None:
                links.set_up(ipr, lo.index)
        progress(f"pod/{name}: network namespace {netns_name(namespace, name)} created")
        outcome = engine.add(conf, store, _request(namespace, name))
        for att in outcome.attachments:
            progress(f"pod/{name}: {att.ifname} attached to {att.network}")
        for guest in guest_addresses:
            _set_guest_address(path, guest)
            progress(f"pod/{name}: lab set {guest.address} on {guest.ifname} "
                     "(guest-side address, not from CNI)")
        eth0_ips = [str(ip.address.ip) for ip in outcome.result.ips]
        _set_status(store, namespace, name, {
            "phase": "Running",
            "podIP": eth0_ips[0] if eth0_ips else "",
            "podIPs": [{"ip": ip} for ip in eth0_ips],
            "containerID": container_id(namespace, name),
        })
    except (MultihomeError, PodError) as e:
        progress(f"pod/{name}: failed, removing it again")
        _cleanup_after_failure(store, namespace, name, path)
        raise PodError(f"pod {pod} could not be started: {e}") from e
    sync_policies(store, settings, progress, first=container_id(namespace, name))
    progress(f"pod/{name} running")
    return outcome


def sync_policies(store: Store, settings: LabSettings, progress: Progress = _quiet,
                  first: str = "") -> None:
    """Reprogram MultiNetworkPolicy rules after a change (container `first` before the
    others); problems are warnings (the change itself is done, and what could not be
    written keeps its old rules)."""
    report = policies.sync(store, settings, first)
    for table in report.programmed:
        progress(f"policy rules programmed ({table})")
    for line in report.invalid_policies + report.errors:
        progress(f"warning: multi-networkpolicy: {line}")


def _cleanup_after_failure(store: Store, namespace: str, name: str, path: str) -> None:
    if path:
        netns.delete_named(netns_name(namespace, name))
    with contextlib.suppress(NotFound):
        store.delete(POD, namespace, name)
    _delete_events(store, namespace, name)  # a NoNetworkFound, say: the pod is not kept


def delete(store: Store, settings: LabSettings, namespace: str, name: str,
           progress: Progress = _quiet) -> None:
    """Detach, remove the namespace and the object; whatever is already gone is skipped.

    Refused (LauncherPodInUse) while the pod is the launcher of a VM whose qemu (or DHCP
    server) runs.
    """
    labdhcp.use(settings)  # a `dhcp` IPAM's leases live in the lab's daemon
    conf = parse_multus_config(settings.engine_config())
    req = _request(namespace, name)
    vm = launcher.vm_using(settings.state_dir, namespace, name)
    if vm is not None:
        raise LauncherPodInUse(namespace, name, vm)
    in_store = True
    try:
        store.get(POD, namespace, name)
    except NotFound:
        in_store = False
    has_cache = engine.load_record(conf, req.container_id) is not None
    has_netns = netns.exists(req.netns)
    if not (in_store or has_cache or has_netns):
        raise PodError(f'pods "{name}" not found in namespace "{namespace}"')
    error: MultihomeError | None = None
    if has_cache or has_netns:
        try:
            # never beside a hot-plug of the pod (another `annotate` or `apply`): an
            # interface it adds after this DEL read the record would outlive the pod
            with attach_hotplug.exclusive(conf) if has_cache else contextlib.nullcontext():
                engine.delete(conf, store, req)
            progress(f"pod/{name}: networks detached")
        except MultihomeError as e:
            error = e
            progress(f"pod/{name}: detaching failed: {e}")
    if has_netns:
        netns.delete_named(netns_name(namespace, name))
        progress(f"pod/{name}: network namespace {netns_name(namespace, name)} deleted")
    if in_store:
        with contextlib.suppress(NotFound):
            store.delete(POD, namespace, name)
    _delete_events(store, namespace, name)
    sync_policies(store, settings, progress)
    progress(f'pod "{name}" deleted')
    if error is not None:
        raise PodError(f"pod {namespace}/{name} deleted, but some networks reported errors: "
                       f"{error}")


def exists_netns(namespace: str, name: str) -> bool:
    return netns.exists(netns_path(namespace, name))


def networks_annotation(selection: str) -> dict[str, str]:
    return {NETWORKS_ANNOTATION: selection} if selection else {}


def _delete_events(store: Store, namespace: str, name: str) -> None:
    """A deleted pod's events go with it (the API server lets them expire)."""
    for event in events_of(store, namespace, name):
        with contextlib.suppress(NotFound):
            store.delete(EVENT, namespace, event.name)


def is_running(settings: LabSettings, namespace: str, name: str) -> bool:
    """Whether the lab attached the pod's networks (the engine holds a record of it)."""
    conf = parse_multus_config(settings.engine_config())
    return engine.load_record(conf, container_id(namespace, name)) is not None


def hotplug(store: Store, settings: LabSettings, namespace: str, name: str,
            previous: str | None, progress: Progress = _quiet) -> attach_hotplug.HotplugOutcome:
    """Make the running pod follow its `k8s.v1.cni.cncf.io/networks` as stored now.

    When nothing could be plugged, the annotation goes back to `previous` (None: absent):
    the lab has no controller that would retry later, so the store keeps saying what the
    pod has. A pod the lab does not run has nothing to change.
    """
    conf = parse_multus_config(settings.engine_config())
    cid = container_id(namespace, name)
    if engine.load_record(conf, cid) is None:
        return attach_hotplug.HotplugOutcome()
    try:
        wanted = store.get(POD, namespace, name)
    except NotFound as e:
        raise PodError(f'pods "{name}" not found in namespace "{namespace}"') from e
    try:
        outcome = attach_hotplug.hotplug(conf, store, cid)
    except attach_hotplug.HotplugFailed as e:  # the additions stand, an unplug failed
        raise PodError(str(e)) from e
    except MultihomeError as e:
        _set_back(store, wanted, previous)
        raise PodError(f"{e} (its {NETWORKS_ANNOTATION} annotation is set back)") from e
    for att in outcome.removed:
        progress(f"pod/{name}: {att.ifname} detached from {att.network}")
    for att in outcome.added:
        progress(f"pod/{name}: {att.ifname} attached to {att.network}")
    return outcome


def _set_back(store: Store, wanted: Object, previous: str | None) -> None:
    """The selection as it was before the failed edit, unless someone edited it since
    (their edit then is the one to follow: never write over it)."""
    if previous is None:
        wanted.annotations.pop(NETWORKS_ANNOTATION, None)
    else:
        wanted.annotations[NETWORKS_ANNOTATION] = previous
    with contextlib.suppress(NotFound, Conflict):
        store.update(wanted, expected_version=wanted.resource_version)
