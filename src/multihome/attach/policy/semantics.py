"""What MultiNetworkPolicies allow, as plain functions (no kernel, no store).

Upstream's rules (NetworkPolicy's, applied per secondary network):

- a policy covers only the networks its `policy-for` annotation names, and selects the
  pods of its own namespace that match `podSelector` and have an interface there;
- a pod selected by no policy for a direction (Ingress/Egress in `policyTypes`) stays
  open in that direction; once selected, only what some selecting policy's rules allow
  passes (the union of the policies, never an intersection);
- a rule without peers allows every peer, without ports every port and protocol (ICMP
  included); a rule with ports allows only those protocols and ports;
- a podSelector peer means pods of the policy's namespace, a namespaceSelector peer every
  pod of the matching namespaces, both together the matching pods of those namespaces;
  pods are reached at their addresses on the same network. An ipBlock peer matches
  addresses in `cidr` outside every `except`;
- a named port is looked up in the destination pod's container ports: the selected pod's
  for ingress, the peer's for egress.

:func:`flow_allowed` answers one question (the conformance table asks it);
:func:`resolve` gives what a node must enforce for one pod's interface.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from multihome.attach.policy.model import EGRESS, INGRESS, IPBlock, Peer, Policy, PortSpec

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by the API


@dataclass(frozen=True)
class ContainerPort:
    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class PodInfo:
    """A pod as the semantics see it: labels, named ports and addresses per network."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    # network `ns/nad` -> addresses of the pod's interface(s) on it
    addresses: Mapping[str, tuple[IPAddress, ...]] = field(default_factory=dict)
    ports: tuple[ContainerPort, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def named_port(self, name: str, protocol: str) -> int | None:
        for p in self.ports:
            if p.name == name and p.protocol == protocol:
                return p.port
        return None


@dataclass(frozen=True)
class Endpoint:
    """The other end of a flow: a pod (with its address on the network) or a bare address."""

    ip: IPAddress
    pod: PodInfo | None = None


def namespace_labels(namespaces: Mapping[str, Mapping[str, str]], namespace: str
                     ) -> dict[str, str]:
    """A namespace's labels, with the name label the API server sets on every namespace."""
    return {**namespaces.get(namespace, {}), NAMESPACE_NAME_LABEL: namespace}


def selects(policy: Policy, pod: PodInfo) -> bool:
    return pod.namespace == policy.namespace and policy.pod_selector.matches(pod.labels)


def policies_for(policies: Iterable[Policy], pod: PodInfo, network: str, direction: str
                 ) -> list[Policy]:
    """The policies that isolate `pod` on `network` in `direction`."""
    return [p for p in policies
            if direction in p.policy_types and p.applies_to(network) and selects(p, pod)]


def selecting(policies: Iterable[Policy], pod: PodInfo) -> list[Policy]:
    """Every policy selecting the pod on one of its networks (the console lists these)."""
    return [p for p in policies if selects(p, pod)
            and any(p.applies_to(net) for net in pod.addresses)]


def pod_peer_matches(peer: Peer, policy_ns: str, pod: PodInfo,
                     namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    if peer.ip_block is not None:
        return False
    if peer.namespace_selector is None:
        in_scope = pod.namespace == policy_ns
    else:
        in_scope = peer.namespace_selector.matches(namespace_labels(namespaces, pod.namespace))
    if not in_scope:
        return False
    return peer.pod_selector is None or peer.pod_selector.matches(pod.labels)


def _peer_matches(peer: Peer, policy_ns: str, other: Endpoint,
                  namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    if peer.ip_block is not None:
        return peer.ip_block.contains(other.ip)
    return other.pod is not None and pod_peer_matches(peer, policy_ns, other.pod, namespaces)


def _port_matches(spec: PortSpec, protocol: str, port: int | None, owner: PodInfo | None
                  ) -> bool:
    if spec.protocol != protocol:
        return False
    if spec.port is None:
        return True
    if port is None:
        return False
    if isinstance(spec.port, str):
        number = owner.named_port(spec.port, protocol) if owner is not None else None
        return number is not None and number == port
    return spec.port <= port <= (spec.end_port or spec.port)


def direction_allows(policies: Iterable[Policy], pod: PodInfo, other: Endpoint, network: str,
                     direction: str, protocol: str, port: int | None,
                     namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    """Whether `pod` may receive from (Ingress) or send to (Egress) `other` on `network`.

    `protocol` is TCP/UDP/SCTP or ICMP (then `port` is None).
    """
    selected = policies_for(policies, pod, network, direction)
    if not selected:
        return True
    port_owner = pod if direction == INGRESS else other.pod
    for policy in selected:
        rules = policy.ingress if direction == INGRESS else policy.egress
        for rule in rules:
            if rule.peers and not any(_peer_matches(p, policy.namespace, other, namespaces)
                                      for p in rule.peers):
                continue
            if not rule.ports or any(_port_matches(s, protocol, port, port_owner)
                                     for s in rule.ports):
                return True
    return False


def flow_allowed(policies: Sequence[Policy], src: PodInfo | Endpoint, dst: PodInfo | Endpoint,
                 network: str, protocol: str, port: int | None,
                 namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    """Whether a new flow from `src` to `dst` on `network` passes: the sender's egress and
    the receiver's ingress must both allow it (an address outside any pod has neither)."""
    s, d = _endpoint(src, network), _endpoint(dst, network)
    if s.pod is not None and not direction_allows(policies, s.pod, d, network, EGRESS,
                                                  protocol, port, namespaces):
        return False
    return d.pod is None or direction_allows(policies, d.pod, s, network, INGRESS, protocol,
                                             port, namespaces)


def _endpoint(value: PodInfo | Endpoint, network: str) -> Endpoint:
    if isinstance(value, Endpoint):
        return value
    ips = value.addresses.get(network, ())
    if not ips:
        raise ValueError(f"pod {value.key} has no address on {network}")
    return Endpoint(ips[0], value)


# -- what a node enforces -------------------------------------------------------------


@dataclass(frozen=True)
class L4:
    """A protocol and a port range; `first` None = every port of the protocol."""

    protocol: str
    first: int | None = None
    last: int | None = None


@dataclass(frozen=True)
class Allow:
    """Traffic one rule lets through: from/to any peer (`any_peer`) or the listed
    addresses and blocks; on any protocol (`ports` None) or the listed ones."""

    any_peer: bool
    addresses: tuple[IPAddress, ...] = ()
    blocks: tuple[IPBlock, ...] = ()
    ports: tuple[L4, ...] | None = None


@dataclass(frozen=True)
class Isolation:
    """What one direction of one pod interface lets through (nothing else passes)."""

    direction: str
    allows: tuple[Allow, ...]
    policies: tuple[str, ...]  # ns/name of the policies that isolate it


def _l4(spec: PortSpec, owner: PodInfo | None) -> L4 | None:
    if spec.port is None:
        return L4(spec.protocol)
    if isinstance(spec.port, str):
        number = owner.named_port(spec.port, spec.protocol) if owner is not None else None
        return None if number is None else L4(spec.protocol, number, number)
    return L4(spec.protocol, spec.port, spec.end_port or spec.port)


# (id of a rule's peers, policy namespace, network) -> the pods they match there: the
# same for every pod a policy selects, so a pass over many pods computes it once
PeerMemo = dict[tuple[int, str, str], list[PodInfo]]


def resolve(policies: Sequence[Policy], pod: PodInfo, network: str, direction: str,
            pods: Sequence[PodInfo], namespaces: Mapping[str, Mapping[str, str]],
            memo: PeerMemo | None = None) -> Isolation | None:
    """What `pod`'s interface on `network` must let through in `direction`; None when no
    policy isolates it (then everything passes). `memo` (one per set of inputs) saves
    matching the same peers again for the next pod."""
    selected = policies_for(policies, pod, network, direction)
    if not selected:
        return None
    memo = memo if memo is not None else {}
    allows: list[Allow] = []
    for policy in selected:
        for rule in policy.ingress if direction == INGRESS else policy.egress:
            key = (id(rule.peers), policy.namespace, network)
            if key not in memo:
                memo[key] = [other for other in pods if other.addresses.get(network) and any(
                    pod_peer_matches(p, policy.namespace, other, namespaces)
                    for p in rule.peers)]
            allows += _rule_allows(rule.peers, rule.ports, memo[key], pod, network,
                                   direction, pods)
    return Isolation(direction, tuple(dict.fromkeys(allows)), tuple(p.key for p in selected))


def _rule_allows(peers: tuple[Peer, ...], specs: tuple[PortSpec, ...],
                 matching: list[PodInfo], pod: PodInfo, network: str, direction: str,
                 pods: Sequence[PodInfo]) -> list[Allow]:
    blocks = tuple(p.ip_block for p in peers if p.ip_block is not None)
    peer_pods = [other for other in matching if other.key != pod.key]
    named_egress = direction == EGRESS and any(isinstance(s.port, str) for s in specs)
    if not named_egress:
        ports = _ports(specs, pod if direction == INGRESS else None)
        if ports == ():
            return []  # every port is a name the pod does not have: nothing passes
        if not peers:
            return [Allow(True, ports=ports)]
        addrs = tuple(ip for other in peer_pods for ip in other.addresses[network])
        return [Allow(False, addrs, blocks, ports)] if addrs or blocks else []
    # Egress to a named port: the number is the peer's, so each peer pod gets its own
    # rule; blocks and "any peer" only get the numbered ports.
    out: list[Allow] = []
    numbered = tuple(s for s in specs if not isinstance(s.port, str))
    if numbered:
        ports = _ports(numbered, None)
        if not peers:
            out.append(Allow(True, ports=ports))
        elif blocks or peer_pods:
            out.append(Allow(False, tuple(ip for o in peer_pods for ip in o.addresses[network]),
                             blocks, ports))
    candidates = peer_pods if peers else [o for o in pods
                                          if o.key != pod.key and o.addresses.get(network)]
    for other in candidates:
        named = _ports(tuple(s for s in specs if isinstance(s.port, str)), other)
        if named:
            out.append(Allow(False, tuple(other.addresses[network]), (), named))
    return out


def _ports(specs: tuple[PortSpec, ...], owner: PodInfo | None) -> tuple[L4, ...] | None:
    """The rule's ports (None: every protocol); () when none resolves."""
    if not specs:
        return None
    return tuple(dict.fromkeys(x for x in (_l4(s, owner) for s in specs) if x is not None))
