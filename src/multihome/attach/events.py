"""The events the engine records on a pod, worded exactly as Multus words them.

`AddedInterface` after each delegate ADD whose result has interfaces or addresses:
`Add <ifname> [<cidr> <cidr>] from <network>` (Go's `%v` of a string slice, addresses
with their prefix, as Multus formats the CNI result's IPs). `NoNetworkFound` (Warning)
when a selected NAD does not exist, with the reason as Multus' informer lister words it.
Stores that are no :class:`EventSink` (the lab's SQLite store) record nothing.
"""

from __future__ import annotations

from typing import Any

from multihome.cni.result import Result
from multihome.store.base import EventSink, Store


def added_interface(store: Store | EventSink | None, pod: tuple[str, str] | None,
                    ifname: str, network: str, result: Result) -> None:
    if pod is None or not isinstance(store, EventSink):
        return
    if not result.interfaces and not result.ips:
        return  # Multus: "some CNI plugins just return an empty result"
    ips = " ".join(str(ip.address) for ip in result.ips)
    where = f" from {network}" if network else ""
    store.record_event(pod, "AddedInterface", f"Add {ifname} [{ips}]{where}")


def no_network_found(store: Store | EventSink | None, pod: tuple[str, str], namespace: str,
                     name: str) -> None:
    if not isinstance(store, EventSink):
        return
    store.record_event(pod, "NoNetworkFound",
                       f"cannot find a network-attachment-definition ({name}) in namespace "
                       f"({namespace}): networkattachmentdefinition.k8s.cni.cncf.io "
                       f'"{name}" not found', "Warning")


# Hot-plug: the multus-dynamic-networks-controller's reasons and wording, `pod [ns/name]:
# added interface net2 to network: nad`, with the element's ips, mac and cni-args after the
# network name when it has any (Go's %v of them), so tools that watch for those events
# work unchanged.

def _attributes(element: dict[str, Any] | None) -> str:
    element = element or {}
    ips, mac, cni_args = element.get("ips"), element.get("mac"), element.get("cni-args")
    if not ips and not mac and cni_args is None:
        return ""
    args = " ".join(f"{k}:{cni_args[k]}" for k in sorted(cni_args)) \
        if isinstance(cni_args, dict) else ""
    return f"(ips: [{' '.join(str(ip) for ip in ips or [])}], mac: {mac or ''}, " \
           f"cni-args: map[{args}])"


def _hotplug(store: Store | EventSink | None, pod: tuple[str, str], reason: str, text: str,
             event_type: str = "Normal") -> None:
    if isinstance(store, EventSink):
        store.record_event(pod, reason, f"pod [{pod[0]}/{pod[1]}]: {text}", event_type)


def interface_added(store: Store | EventSink | None, pod: tuple[str, str], ifname: str,
                    network: str, element: dict[str, Any] | None) -> None:
    _hotplug(store, pod, "AddedInterface",
             f"added interface {ifname} to network: {network}{_attributes(element)}")


def interface_add_failed(store: Store | EventSink | None, pod: tuple[str, str], ifname: str,
                         network: str, element: dict[str, Any] | None, why: str) -> None:
    _hotplug(store, pod, "FailedAddingInterface",
             f"failed adding interface {ifname} to network: {network}"
             f"{_attributes(element)}: {why}", "Warning")


def interface_removed(store: Store | EventSink | None, pod: tuple[str, str], ifname: str,
                      network: str) -> None:
    _hotplug(store, pod, "RemovedInterface",
             f"removed interface {ifname} from network: {network}")


def interface_remove_failed(store: Store | EventSink | None, pod: tuple[str, str],
                            ifname: str, network: str, why: str) -> None:
    _hotplug(store, pod, "FailedRemovingInterface",
             f"failed removing interface {ifname} from network: {network}: {why}", "Warning")


def selection_refused(store: Store | EventSink | None, pod: tuple[str, str], why: str) -> None:
    _hotplug(store, pod, "FailedAddingInterface", f"failed adding interfaces: {why}",
             "Warning")
