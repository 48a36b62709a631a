"""The `k8s.v1.cni.cncf.io/network-status` annotation, built from delegate results."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from multihome.cni.result import Result

NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"


@dataclass
class NetworkStatus:
    """One entry of the annotation (network-status in the multi-network spec v1.3)."""

    name: str
    interface: str
    ips: list[str] = field(default_factory=list)
    mac: str = ""
    mtu: int = 0
    default: bool = False
    dns: dict[str, Any] = field(default_factory=dict)
    gateway: list[str] = field(default_factory=list)
    device_info: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "interface": self.interface}
        if self.ips:
            out["ips"] = list(self.ips)
        if self.mac:
            out["mac"] = self.mac
        if self.mtu:
            out["mtu"] = self.mtu
        if self.default:  # Multus (the client library's omitempty) leaves out false
            out["default"] = True
        out["dns"] = dict(self.dns)
        if self.gateway:
            out["gateway"] = list(self.gateway)
        if self.device_info:
            out["device-info"] = dict(self.device_info)
        return out


def entries_from_result(network: str, ifname: str, result: Result, *, default: bool,
                        gateways: list[str] | None = None,
                        device_info: dict[str, Any] | None = None) -> list[NetworkStatus]:
    """Entries for one attachment: one per interface the delegate put in the sandbox.

    A result without sandbox interfaces (some IPAM-only or legacy plugins) still gives
    one entry under the requested interface name holding every address.
    """
    dns = result.dns.to_dict()
    sandboxed = [(i, iface) for i, iface in enumerate(result.interfaces) if iface.sandbox]
    out: list[NetworkStatus] = []
    if not sandboxed:
        out.append(NetworkStatus(network, ifname, [str(ip.address.ip) for ip in result.ips],
                                 default=default, dns=dns))
    for index, iface in sandboxed:
        ips = [str(ip.address.ip) for ip in result.ips
               if ip.interface == index or (ip.interface is None and len(sandboxed) == 1)]
        out.append(NetworkStatus(network, iface.name, ips, iface.mac, iface.mtu,
                                 default=default, dns=dns))
    for entry in out:
        if gateways:
            entry.gateway = list(gateways)
        if device_info:
            entry.device_info = device_info
    return out


def gateways_of(result: Result) -> list[str]:
    """The gateways of the result's default routes: what Multus records as `gateway`
    (an address's own gateway field is not a route, and Multus ignores it)."""
    return [str(r.gw) for r in result.routes if r.gw is not None and r.dst.prefixlen == 0]


def render(entries: list[NetworkStatus]) -> str:
    return json.dumps([e.to_dict() for e in entries], indent=4)


def parse(text: str) -> list[dict[str, Any]]:
    """The annotation's entries; an empty or broken value reads as no entries."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # anyone's text: "[" * 5000 must not crash a reader
        return []
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []
