"""The probes `node apply` runs before and after a change, as kubernetes-nmstate runs them.

- ping: the targets a policy names (`probes.ping`), targets from the command line, and
  the default gateways of the main table unless `probes.default-gateway: false`;
- dns: each name in `probes.dns` (and the daemon's settings) must resolve through the
  node's resolver (its resolv.conf nameservers, asked from the node's namespace);
- api-server: in Kubernetes mode, a TCP connection to the API server must open (the
  daemon passes its API server; `probes.api-server: "ADDR:PORT"` names another).

As in kubernetes-nmstate a probe counts only if it passed before the change, so a node
without a reachable gateway or resolver does not roll back every policy. Every probe is
bounded: ping 3 echo requests of 1 s, DNS and TCP `timeout` seconds per target
(`probes.timeout`, default DEFAULT_TIMEOUT_S).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from multihome.net import icmp, reach
from multihome.node import current
from multihome.node import state as models

DEFAULT_TIMEOUT_S = 3
PING_COUNT = 3


class BadTarget(ValueError):
    """A probe target that cannot be probed (the message says why)."""


@dataclass(frozen=True)
class Defaults:
    """Probe targets from the daemon's settings, added to what a policy names."""

    dns: tuple[str, ...] = ()
    api_server: str | None = None  # "ADDR:PORT" or an https:// URL with an address


@dataclass(frozen=True)
class Probe:
    kind: str  # "ping", "dns" or "api-server"
    target: str

    def __str__(self) -> str:
        # ping targets print bare, as they always have ("probes passed: 10.0.0.1")
        return self.target if self.kind == "ping" else f"{self.kind} {self.target}"


def api_endpoint(target: str) -> tuple[str, int]:
    """(address, port) of "ADDR:PORT", "[V6]:PORT" or "https://ADDR[:PORT][/…]"."""
    if not isinstance(target, str) or not target or len(target) > 2048:
        raise BadTarget("expected ADDRESS:PORT or an https:// URL")
    try:
        parsed = urllib.parse.urlsplit(target if "//" in target else f"//{target}")
    except ValueError as e:
        raise BadTarget(f"{target[:80]!r}: {e}") from None
    if parsed.scheme not in ("", "https", "http"):
        raise BadTarget(f"{target!r}: only https:// URLs or ADDRESS:PORT")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError as e:
        raise BadTarget(f"{target!r}: {e}") from None
    if port is None:
        port = 443 if parsed.scheme == "https" else None
    if not host or port is None or not 0 < port < 65536:
        raise BadTarget(f"{target!r}: needs an address and a port")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # a name would need the resolver the change may break; the probe needs an address
        raise BadTarget(f"{target!r}: {host} is not an IP address") from None
    return host, port


def check(section: object) -> None:
    """The targets of a `probes` mapping (already type-checked); BadTarget with the key."""
    if not isinstance(section, dict):
        return
    for i, target in enumerate(section.get("ping") or []):
        try:
            ipaddress.ip_address(target)
        except ValueError:
            raise BadTarget(f"ping[{i}]: {target!r} is not an IP address") from None
    for i, name in enumerate(section.get("dns") or []):
        if not reach.valid_name(name):
            raise BadTarget(f"dns[{i}]: {name[:80]!r} is not a DNS name")
    if section.get("api-server") is not None:
        try:
            api_endpoint(section["api-server"])
        except BadTarget as e:
            raise BadTarget(f"api-server: {e}") from None


def targets(desired: models.NodeState, extra_pings: Sequence[str],
            netns_path: str | None, defaults: Defaults | None = None) -> list[Probe]:
    defaults = defaults or Defaults()
    pings = [*desired.probes.ping, *extra_pings]
    if desired.probes.default_gateway and not pings:
        for route in current.read(netns_path, names=set()).running:
            if route.destination is not None and route.destination.prefixlen == 0 \
                    and route.next_hop_address is not None:
                pings.append(str(route.next_hop_address))
    out = [Probe("ping", t) for t in pings]
    out += [Probe("dns", n) for n in (*desired.probes.dns, *defaults.dns)]
    api = desired.probes.api_server or defaults.api_server
    if api:
        out.append(Probe("api-server", api))
    return list(dict.fromkeys(out))


def passes(probe: Probe, netns_path: str | None, timeout: float) -> bool:
    if probe.kind == "ping":
        return icmp.ping(probe.target, netns_path=netns_path, count=PING_COUNT)
    if probe.kind == "dns":
        return reach.resolves(probe.target, netns_path=netns_path, timeout=timeout)
    host, port = api_endpoint(probe.target)
    return reach.connects(host, port, netns_path=netns_path, timeout=timeout)


def failed(probes: Sequence[Probe], netns_path: str | None,
           timeout: float = DEFAULT_TIMEOUT_S) -> list[Probe]:
    return [p for p in probes if not passes(p, netns_path, timeout)]
