"""The events the engine records on a pod, worded exactly as Multus words them.

`AddedInterface` after each delegate ADD whose result has interfaces or addresses:
`Add <ifname> [<cidr> <cidr>] from <network>` (Go's `%v` of a string slice, addresses
with their prefix, as Multus formats the CNI result's IPs). `NoNetworkFound` (Warning)
when a selected NAD does not exist, with the reason as Multus' informer lister words it.
Stores that are no :class:`EventSink` (the lab's SQLite store) record nothing.
"""

from __future__ import annotations

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
