"""From a pod to the ordered list of attachments the engine will make.

Resolution only: the store and config files are read, nothing touches the kernel.
Order is Multus' order: the default network (`eth0`), then `defaultNetworks` (not in
system namespaces), then the pod's `k8s.v1.cni.cncf.io/networks` selection.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

from multihome.attach import events
from multihome.attach.devices import DeviceAssigner, allocated, inject_device_id
from multihome.attach.logs import log
from multihome.attach.multus_config import MultusConfig
from multihome.attach.nad import delegate_config_problem
from multihome.attach.naming import DEFAULT_IFNAME, assign_names
from multihome.attach.selection import NetworkSelection, parse_networks_annotation
from multihome.cni import jsontext
from multihome.cni.errors import CNIError, DecodingFailure, InvalidConfig, UnknownContainer
from multihome.store import NAD, POD, NotFound, Object, Store

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"

# selection field -> runtimeConfig capability it needs
# selection fields Multus also passes as legacy CNI_ARGS, whatever the capabilities
LEGACY_ARGS = {"mac": "MAC", "ips": "IP"}
CAPABILITY_OF_FIELD: dict[str, str] = {
    "ips": "ips",
    "mac": "mac",
    "bandwidth": "bandwidth",
    "port_mappings": "portMappings",
    "infiniband_guid": "infinibandGUID",
    "device_id": "deviceID",
}


class NamespaceIsolationError(InvalidConfig):
    """A pod selected a NAD outside its namespace and the global namespaces."""


@dataclass
class Attachment:
    """One delegate call: which network, under which interface name, with what extras."""

    network: str  # "ns/nad" for NADs, the network name for the file-based default
    ifname: str
    conflist: dict[str, Any]  # always in conflist form, cni-args already merged
    default: bool = False
    capability_args: dict[str, Any] = field(default_factory=dict)
    default_route: list[str] = field(default_factory=list)
    # the NAD's device-plugin resource and the device of it this attachment uses
    resource: str = ""
    device_id: str = ""
    # the `k8s.v1.cni.cncf.io/networks` element this attachment was made for (its JSON
    # form), None for the default network, defaultNetworks and delegates: hot-plug tells
    # by it which interface belongs to which element, unnamed ones included
    element: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network, "ifname": self.ifname, "conflist": self.conflist,
                "default": self.default, "capabilityArgs": self.capability_args,
                "defaultRoute": self.default_route, "resource": self.resource,
                "deviceID": self.device_id, "element": self.element}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attachment:
        element = data.get("element")
        return cls(str(data["network"]), str(data["ifname"]), dict(data["conflist"]),
                   bool(data.get("default", False)), dict(data.get("capabilityArgs") or {}),
                   [str(g) for g in data.get("defaultRoute") or []],
                   str(data.get("resource") or ""), str(data.get("deviceID") or ""),
                   dict(element) if isinstance(element, dict) else None)

    @property
    def network_name(self) -> str:
        return str(self.conflist.get("name", ""))


def as_conflist(value: Any, fallback_name: str = "") -> dict[str, Any]:
    """A single plugin config or a conflist (dict, JSON text, or a parsed list) as a conflist."""
    raw = getattr(value, "raw", value)
    if isinstance(raw, bytes | str):
        raw = jsontext.loads(raw, f"network config of {fallback_name}")
    if not isinstance(raw, dict):
        raise InvalidConfig(f"network config of {fallback_name} must be a JSON object")
    if jsontext.too_deep(raw):
        raise DecodingFailure(f"network config of {fallback_name} nests deeper than "
                              f"{jsontext.MAX_DEPTH} levels")
    raw = copy.deepcopy(raw)
    if not raw.get("name") and fallback_name:
        raw["name"] = fallback_name
    if isinstance(raw.get("plugins"), list):
        return raw
    single = {k: v for k, v in raw.items() if k not in ("cniVersion", "name")}
    out: dict[str, Any] = {"cniVersion": raw.get("cniVersion", "0.1.0"), "name": raw.get("name"),
                           "plugins": [single]}
    # capabilities stay with the plugin (libcni reads them per plugin)
    for key in ("disableCheck", "disableGC"):
        if key in single:
            out[key] = single.pop(key)
    return out


def _delegate_cni_args(sel: NetworkSelection) -> dict[str, Any] | None:
    """The element's `cni-args`, plus its `ipam-claim-reference` where the IPAM reads it
    (args.cni, as whereabouts does)."""
    if sel.ipam_claim_reference:
        return {**(sel.cni_args or {}), "ipam-claim-reference": sel.ipam_claim_reference}
    return sel.cni_args


def merge_cni_args(conflist: dict[str, Any], cni_args: dict[str, Any] | None) -> None:
    """`cni-args` from the selection go into `args.cni` of every plugin."""
    if not cni_args:
        return
    for plugin in conflist.get("plugins", []):
        if not isinstance(plugin, dict):
            continue
        args = plugin.setdefault("args", {})
        if not isinstance(args, dict):
            raise InvalidConfig(f"network {conflist.get('name')}: 'args' must be an object")
        cni = args.setdefault("cni", {})
        if isinstance(cni, dict):
            cni.update(cni_args)


def plugin_capabilities(conflist: dict[str, Any]) -> set[str]:
    caps: set[str] = set()
    for plugin in conflist.get("plugins", []):
        if isinstance(plugin, dict) and isinstance(plugin.get("capabilities"), dict):
            caps.update(k for k, v in plugin["capabilities"].items() if v)
    return caps


@dataclass
class PodRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def load_pod(store: Store, pod: PodRef) -> Object:
    try:
        return store.get(POD, pod.namespace, pod.name)
    except NotFound as e:
        raise UnknownContainer(f"pod {pod} not found in the store") from e


def _pod_object(conf: MultusConfig, store: Store | None, pod: PodRef | None) -> Object | None:
    """The pod from the store; None without a store or pod arguments, and in delegates
    mode for a pod the store does not have (Multus reads no pod there either)."""
    if store is None or pod is None:
        return None
    try:
        return load_pod(store, pod)
    except UnknownContainer:
        if conf.cluster_network or not conf.delegates:
            raise  # the pod's own selection decides its networks: it must be known
        return None


def _resolve_nad(store: Store | None, conf: MultusConfig, namespace: str, name: str,
                 who: str, pod: PodRef | None = None) -> dict[str, Any]:
    return _resolve_nad_resource(store, conf, namespace, name, who, pod)[0]


def _resolve_nad_resource(store: Store | None, conf: MultusConfig, namespace: str, name: str,
                          who: str, pod: PodRef | None = None) -> tuple[dict[str, Any], str]:
    """The NAD's config as a conflist, and its resourceName ("" when it names none).

    A NAD that does not exist gets the pod its NoNetworkFound event, where Multus
    records it (k8sclient.GetNetworkDelegates)."""
    if store is None:
        return as_conflist(_conf_dir_config(conf, name, who), name), ""
    from multihome.attach.nad import nad_config_from_object, resource_name

    try:
        nad = store.get(NAD, namespace, name)
    except NotFound as e:
        if pod is not None:
            events.no_network_found(store, (pod.namespace, pod.name), namespace, name)
        raise InvalidConfig(f"{who}: NAD {namespace}/{name} not found") from e
    return (as_conflist(nad_config_from_object(nad, conf.conf_dir), name),
            resource_name(nad) or "")


def assign_device(att: Attachment, assigner: DeviceAssigner) -> None:
    """Multus' rule: each attachment of a resource-backed NAD takes the pod's next device."""
    if not att.resource:
        return
    requested = att.capability_args.get("deviceID")
    device = str(requested) if requested else assigner.take(att.resource)
    if device:
        att.device_id = device
        inject_device_id(att.conflist, device)
        if "deviceID" in plugin_capabilities(att.conflist):
            att.capability_args.setdefault("deviceID", device)


def _conf_dir_config(conf: MultusConfig, name: str, who: str) -> Any:
    from multihome.cni.runtime import load_from_dir

    try:
        return load_from_dir(conf.conf_dir, name)
    except CNIError as e:
        raise InvalidConfig(f"{who}: network {name!r} not found in {conf.conf_dir}",
                            e.msg) from e


def _load_path(path: str, who: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return as_conflist(f.read(), os.path.basename(path))
    except OSError as e:
        raise InvalidConfig(f"{who}: cannot read default network config {path}", str(e)) from e


def default_network(conf: MultusConfig, store: Store | None,
                    pod_obj: Object | None, pod: PodRef | None) -> Attachment:
    """The pod's default network: the pod annotation, else clusterNetwork, else delegates[0]."""
    who = f"pod {pod}" if pod else "default network"
    override = pod_obj.annotations.get(DEFAULT_NETWORK_ANNOTATION, "") if pod_obj else ""
    if override.strip() and pod is not None:
        from multihome.attach.selection import parse_default_network_annotation

        # Multus resolves a namespace-less default network in multusNamespace.
        sel = parse_default_network_annotation(override, conf.multus_namespace, pod.name)
        assert sel is not None  # the text is not blank
        conflist = _resolve_nad(store, conf, sel.namespace, sel.name, who, pod)
        return Attachment(f"{sel.namespace}/{sel.name}", DEFAULT_IFNAME, conflist, default=True)
    if conf.cluster_network:
        ref = conf.cluster_network
        if os.path.isabs(ref) or ref.endswith((".conf", ".conflist", ".json")):
            conflist = _load_path(ref, who)
            return Attachment(str(conflist.get("name", ref)), DEFAULT_IFNAME, conflist, True)
        if store is not None:
            try:
                store.get(NAD, conf.multus_namespace, ref)
            except NotFound:
                pass
            else:
                conflist = _resolve_nad(store, conf, conf.multus_namespace, ref, who)
                return Attachment(f"{conf.multus_namespace}/{ref}", DEFAULT_IFNAME, conflist,
                                  True)
        conflist = as_conflist(_conf_dir_config(conf, ref, who), ref)
        return Attachment(str(conflist.get("name", ref)), DEFAULT_IFNAME, conflist, True)
    conflist = as_conflist(conf.delegates[0], "default")
    return Attachment(str(conflist.get("name")), DEFAULT_IFNAME, conflist, True)


def check_isolation(conf: MultusConfig, pod: PodRef, namespace: str, name: str) -> None:
    if not conf.namespace_isolation or namespace == pod.namespace or conf.is_global(namespace):
        return
    globals_ = sorted({"default", *conf.global_namespaces})
    raise NamespaceIsolationError(
        f"pod {pod} may not use network {namespace}/{name}: namespace isolation allows only "
        f'NADs in "{pod.namespace}" and global namespaces [{", ".join(globals_)}]'
    )


def _capability_args(sel: Any, network: str, pod: PodRef,
                     conflist: dict[str, Any]) -> dict[str, Any]:
    wanted: dict[str, Any] = {}
    for attr, cap in CAPABILITY_OF_FIELD.items():
        value = getattr(sel, attr, None)
        if value in (None, "", [], {}):
            continue
        wanted[cap] = list(value) if isinstance(value, tuple) else value
    if wanted:
        # Multus refuses none of these: a runtimeConfig key reaches only the plugins that
        # declare its capability (libcni's rule), and `mac` / `ips` reach the others too,
        # as the legacy CNI_ARGS MAC= / IP= (engine._legacy_args). Say what is dropped.
        have = plugin_capabilities(conflist)
        dropped = sorted(k for k in wanted if k not in have and k not in LEGACY_ARGS)
        if dropped:
            log.warning("pod %s: network %s was asked for %s, but no plugin in its config "
                        "declares the capability: not passed", pod, network,
                        ", ".join(dropped))
    return wanted


def plan(conf: MultusConfig, store: Store | None, pod: PodRef | None,
         default_ifname: str = DEFAULT_IFNAME) -> list[Attachment]:
    """Every attachment for the pod, in order; raises before anything is attached.

    Multus' `delegates` mode (no clusterNetwork) attaches every delegate whether or not
    the pod is known: without pod arguments, and when the store has no such pod.
    """
    pod_obj = _pod_object(conf, store, pod)
    first = default_network(conf, store, pod_obj, pod)
    first.ifname = default_ifname
    attachments = [first]
    who = f"pod {pod}" if pod is not None else "container without pod arguments"
    extra: list[tuple[Attachment, str | None]] = []
    if pod is not None and pod.namespace not in conf.system_namespaces:
        for name in conf.default_networks:
            conflist, resource = _resolve_nad_resource(store, conf, conf.multus_namespace,
                                                       name, who, pod)
            extra.append((Attachment(f"{conf.multus_namespace}/{name}", "", conflist,
                                     resource=resource), None))
    for i, delegate in enumerate(conf.delegates[1:], start=1):
        conflist = as_conflist(delegate, f"delegate{i}")
        extra.append((Attachment(str(conflist.get("name")), "", conflist), None))
    if pod_obj is not None and pod is not None:
        for sel in selection_of(pod_obj, pod):
            extra.append((selected_attachment(conf, store, pod, sel), sel.interface or None))
    check_delegate(first, who)
    for att, _ in extra:
        check_delegate(att, who)
    names = assign_names([want for _, want in extra], str(pod) if pod else "-", default_ifname)
    assigner = device_assigner(conf, pod_obj)
    for (att, _), ifname in zip(extra, names, strict=True):
        att.ifname = ifname
        assign_device(att, assigner)
        attachments.append(att)
    return attachments


def selection_of(pod_obj: Object, pod: PodRef) -> list[NetworkSelection]:
    """The pod's `k8s.v1.cni.cncf.io/networks` elements; raises on a bad annotation."""
    text = pod_obj.annotations.get(NETWORKS_ANNOTATION, "")
    if not text.strip():
        return []
    return parse_networks_annotation(text, pod.namespace, pod.name)


def selected_attachment(conf: MultusConfig, store: Store | None, pod: PodRef,
                        sel: NetworkSelection) -> Attachment:
    """The attachment for one selection element, its interface name still to be given:
    isolation checked, the NAD resolved (NoNetworkFound when it is missing)."""
    check_isolation(conf, pod, sel.namespace, sel.name)
    network = f"{sel.namespace}/{sel.name}"
    conflist, resource = _resolve_nad_resource(store, conf, sel.namespace, sel.name,
                                               f"pod {pod}", pod)
    merge_cni_args(conflist, _delegate_cni_args(sel))
    return Attachment(network, "", conflist,
                      capability_args=_capability_args(sel, network, pod, conflist),
                      default_route=[str(g) for g in (sel.default_route or [])],
                      resource=resource, element=sel.to_dict())


def check_delegate(att: Attachment, who: str) -> None:
    problem = delegate_config_problem(att.conflist)
    if problem:
        raise InvalidConfig(f"{who}: network {att.network}: {problem}")


def device_assigner(conf: MultusConfig, pod_obj: Object | None) -> DeviceAssigner:
    return DeviceAssigner(allocated(conf.kubelet_checkpoint_file,
                                    pod_obj.uid if pod_obj else ""))
