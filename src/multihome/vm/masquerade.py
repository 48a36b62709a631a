"""KubeVirt's masquerade binding: the VM behind NAT on the launcher pod's eth0.

Inside the launcher pod: a bridge `k6t-eth0` holding the gateway 10.0.2.1/24 and a tap
for the VM, whose guest gets 10.0.2.2 by DHCP (vm.dhcp). nftables in the pod's own
namespace (table `ip mh-masquerade`):
- outbound: what the guest sends out of eth0 is masqueraded to the pod's address, so
  the cluster sees the pod, as for any pod;
- inbound: what arrives on eth0 for the pod is DNAT'd to the guest, every port when the
  VM lists none (KubeVirt's default), else only the listed `port[/tcp|udp]`s.
eth0 itself stays as CNI made it (address, MAC, routes): the pod is the VM's face.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from multihome.cni.errors import CNIError
from multihome.net import addr, links, netns, nft, sysctl
from multihome.vm import tap
from multihome.vm.errors import VMError
from multihome.vm.naming import bridge_name, tap_name
from multihome.vm.state import Nic

STEP = "binding"
GATEWAY = ipaddress.ip_interface("10.0.2.1/24")
GUEST = ipaddress.ip_interface("10.0.2.2/24")
GATEWAY_MAC = "02:00:00:00:00:00"
TABLE = "mh-masquerade"
PROTOCOLS = ("tcp", "udp")


def parse_port(text: str) -> tuple[int, str]:
    """`80`, `80/tcp` or `53/udp` → (port, protocol); ValueError with a sentence."""
    num, sep, proto = text.partition("/")
    proto = proto if sep else "tcp"
    if proto not in PROTOCOLS or not num.isdigit() or not 0 < int(num) < 65536:
        raise ValueError(f"invalid port {text!r}: expected PORT[/tcp|/udp], PORT 1-65535")
    return int(num), proto


def _match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _iif(name: str) -> dict[str, Any]:
    return _match({"meta": {"key": "iifname"}}, name)


def _oif(name: str) -> dict[str, Any]:
    return _match({"meta": {"key": "oifname"}}, name)


def _rule(chain: str, *expr: dict[str, Any]) -> dict[str, Any]:
    return {"add": {"rule": {"family": "ip", "table": TABLE, "chain": chain,
                             "expr": list(expr)}}}


def _chain(name: str, hook: str, prio: int) -> dict[str, Any]:
    return {"add": {"chain": {"family": "ip", "table": TABLE, "name": name, "type": "nat",
                              "hook": hook, "prio": prio, "policy": "accept"}}}


def nat_rules(pod_ifname: str, ports: list[str]) -> list[dict[str, Any]]:
    """The nftables batch of the binding (pure, so its shape is unit-tested)."""
    guest = str(GUEST.ip)
    dnat = {"dnat": {"addr": guest}}
    cmds: list[dict[str, Any]] = [
        {"add": {"table": {"family": "ip", "name": TABLE}}},
        _chain("prerouting", "prerouting", -100),
        _chain("postrouting", "postrouting", 100),
        _rule("postrouting", _oif(pod_ifname),
              _match({"payload": {"protocol": "ip", "field": "saddr"}}, guest),
              {"masquerade": None}),
    ]
    if not ports:
        cmds.append(_rule("prerouting", _iif(pod_ifname), dnat))
    for text in ports:
        port, proto = parse_port(text)
        cmds.append(_rule("prerouting", _iif(pod_ifname),
                          _match({"payload": {"protocol": proto, "field": "dport"}}, port),
                          dnat))
    return cmds


def bind(pod_netns: str, nic: Nic) -> int:
    """Bridge with the gateway address, tap, forwarding and NAT; returns the tap fd."""
    try:
        with netns.iproute_in(pod_netns) as ipr:
            if links.by_name(ipr, nic.ifname) is None:
                raise VMError(STEP, f"the pod has no interface {nic.ifname}")
            nic.bridge, nic.tap = bridge_name(nic.ifname), tap_name(nic.ifname)
            bridge = links.ensure_bridge(ipr, nic.bridge)
            # the same gateway MAC in every launcher pod: after a migration the guest's
            # ARP entry for 10.0.2.1 stays right
            links.set_mac(ipr, bridge.index, GATEWAY_MAC)
            addr.add_address(ipr, bridge.index, GATEWAY, nodad=True, ifname=nic.bridge)
            links.set_up(ipr, bridge.index)
        fd = tap.open_port(pod_netns, nic.tap, bridge.index, STEP)
        try:
            with netns.entered(pod_netns):
                # the pod routes between the guest and eth0: forwarding is per namespace
                sysctl.write("net.ipv4.ip_forward", "1")
                for name in (nic.bridge, nic.tap):
                    sysctl.write_best_effort(sysctl.iface_key("ipv6", name, "disable_ipv6"),
                                             "1")
                nft.run(nat_rules(nic.ifname, nic.ports), what="add the masquerade rules")
        except BaseException:
            os.close(fd)  # qemu never gets it
            raise
        nic.addresses, nic.gateway, nic.dhcp = [str(GUEST)], str(GATEWAY.ip), True
        return fd
    except VMError:
        raise
    except (CNIError, ValueError) as e:
        raise VMError(STEP, f"masquerade binding of {nic.ifname} failed", str(e)) from e


def unbind(pod_netns: str, nic: Nic) -> None:
    """Remove the NAT table, the tap and the bridge; gone parts are fine."""
    if not netns.exists(pod_netns):
        return
    with netns.entered(pod_netns):
        if nft.table_exists("ip", TABLE):
            nft.run([{"delete": {"table": {"family": "ip", "name": TABLE}}}],
                    what="remove the masquerade rules")
    with netns.iproute_in(pod_netns) as ipr:
        for name in (nic.tap, nic.bridge):
            if name:
                links.delete_by_name(ipr, name)
