"""A MultiNetworkPolicy as upstream defines it, parsed and validated.

The spec is Kubernetes' NetworkPolicySpec (k8snetworkplumbingwg/multi-networkpolicy
`v1beta1`): `podSelector`, `policyTypes`, `ingress[].from` / `egress[].to` peers
(podSelector, namespaceSelector, ipBlock with except) and `ports` (port number or named
port, `endPort`, protocol TCP/UDP/SCTP). The networks it covers come from the annotation
`k8s.v1.cni.cncf.io/policy-for`: a comma list of `[namespace/]nad`.

Validation follows the API server's NetworkPolicy rules (a peer is ipBlock alone or
selectors; `except` strictly inside `cidr`; `endPort` only with a numeric `port`), plus
bounds on every list so a hostile object cannot make enforcement huge. Every refusal is
one line naming the field.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from multihome.store import MULTI_POLICY, Object, names
from multihome.store.labels import InvalidSelector, LabelSelector, parse_selector

POLICY_FOR_ANNOTATION = "k8s.v1.cni.cncf.io/policy-for"
INGRESS, EGRESS = "Ingress", "Egress"
PROTOCOLS = ("TCP", "UDP", "SCTP")
# Bounds on what one policy may hold (the API server has none; the node's rule set must).
MAX_RULES = 256
MAX_PEERS = 256
MAX_PORTS = 256
MAX_EXCEPT = 256
MAX_NETWORKS = 64
_SVC_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class InvalidPolicy(ValueError):
    """A MultiNetworkPolicy the API server (or the node) would refuse; one line."""


@dataclass(frozen=True)
class PortSpec:
    protocol: str  # TCP, UDP or SCTP
    port: int | str | None  # None: every port of the protocol; str: a named port
    end_port: int | None = None

    def __str__(self) -> str:
        if self.port is None:
            return f"<any>/{self.protocol}"
        if self.end_port is not None:
            return f"{self.port}-{self.end_port}/{self.protocol}"
        return f"{self.port}/{self.protocol}"


@dataclass(frozen=True)
class IPBlock:
    cidr: IPNetwork
    except_: tuple[IPNetwork, ...] = ()

    def contains(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return (ip.version == self.cidr.version and ip in self.cidr
                and not any(ip in e for e in self.except_))

    def __str__(self) -> str:
        if not self.except_:
            return str(self.cidr)
        return f"{self.cidr} except {', '.join(str(e) for e in self.except_)}"


@dataclass(frozen=True)
class Peer:
    """One entry of `from`/`to`: ipBlock alone, or pod and/or namespace selectors."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    def __str__(self) -> str:
        if self.ip_block is not None:
            return f"IPBlock: {self.ip_block}"
        parts = []
        if self.namespace_selector is not None:
            parts.append(f"NamespaceSelector: {self.namespace_selector}")
        if self.pod_selector is not None:
            parts.append(f"PodSelector: {self.pod_selector}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Rule:
    """One ingress or egress rule; empty `ports` = every port and protocol, empty
    `peers` = every peer (both as in NetworkPolicy)."""

    ports: tuple[PortSpec, ...] = ()
    peers: tuple[Peer, ...] = ()


@dataclass(frozen=True)
class NetworkRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Policy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: frozenset[str]
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]
    networks: tuple[NetworkRef, ...]  # empty: the policy applies to no network

    def applies_to(self, network: str) -> bool:
        """Whether it covers the network `ns/nad` (as network-status names it)."""
        return any(str(n) == network for n in self.networks)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_policy(obj: Object) -> Policy:
    """The policy an object holds; InvalidPolicy (one line) when it is not valid."""
    if obj.kind != MULTI_POLICY:
        raise InvalidPolicy(f"{obj.kind} is not a {MULTI_POLICY}")
    spec = obj.body.get("spec")
    if not isinstance(spec, dict):
        raise InvalidPolicy("spec: Required value: a MultiNetworkPolicy needs a spec "
                            "with a podSelector")
    unknown = sorted(set(spec) - {"podSelector", "policyTypes", "ingress", "egress"})
    if unknown:
        raise InvalidPolicy(f"spec: unknown field {json.dumps(str(unknown[0])[:80])}")
    if "podSelector" not in spec:
        raise InvalidPolicy("spec.podSelector: Required value (use {} to select every pod "
                            "of the namespace)")
    try:
        pod_selector = parse_selector(spec.get("podSelector") or {}, "spec.podSelector")
        ingress = _rules(spec.get("ingress"), "spec.ingress", "from")
        egress = _rules(spec.get("egress"), "spec.egress", "to")
    except InvalidSelector as e:
        raise InvalidPolicy(str(e)) from None
    types = _policy_types(spec.get("policyTypes"), bool(egress))
    return Policy(obj.namespace, obj.name, pod_selector, types, ingress, egress,
                  parse_policy_for(obj.annotations.get(POLICY_FOR_ANNOTATION), obj.namespace))


def _policy_types(value: Any, has_egress: bool) -> frozenset[str]:
    if value is None or value == []:
        # Kubernetes' defaulting: Ingress always, Egress when there are egress rules.
        return frozenset({INGRESS, EGRESS} if has_egress else {INGRESS})
    if not isinstance(value, list):
        raise InvalidPolicy("spec.policyTypes: must be a list of Ingress and/or Egress")
    if len(value) > 2:
        raise InvalidPolicy("spec.policyTypes: Too many: may hold Ingress and Egress only")
    seen: set[str] = set()
    for i, item in enumerate(value):
        if item not in (INGRESS, EGRESS):
            raise InvalidPolicy(f"spec.policyTypes[{i}]: Unsupported value: "
                                f"{json.dumps(str(item)[:40])}: supported values: "
                                '"Ingress", "Egress"')
        if item in seen:
            raise InvalidPolicy(f"spec.policyTypes[{i}]: Duplicate value: {json.dumps(item)}")
        seen.add(item)
    return frozenset(seen)


def _rules(value: Any, where: str, peers_key: str) -> tuple[Rule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidPolicy(f"{where}: must be a list of rules")
    if len(value) > MAX_RULES:
        raise InvalidPolicy(f"{where}: more than {MAX_RULES} rules")
    rules = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if item is None:
            item = {}
        if not isinstance(item, dict):
            raise InvalidPolicy(f"{at}: must be a mapping with ports and {peers_key}")
        unknown = sorted(set(item) - {"ports", peers_key})
        if unknown:
            raise InvalidPolicy(f"{at}: unknown field {json.dumps(str(unknown[0])[:80])}")
        rules.append(Rule(_ports(item.get("ports"), f"{at}.ports"),
                          _peers(item.get(peers_key), f"{at}.{peers_key}")))
    return tuple(rules)


def _ports(value: Any, where: str) -> tuple[PortSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidPolicy(f"{where}: must be a list")
    if len(value) > MAX_PORTS:
        raise InvalidPolicy(f"{where}: more than {MAX_PORTS} ports")
    return tuple(_port(p, f"{where}[{i}]") for i, p in enumerate(value))


def _port(value: Any, where: str) -> PortSpec:
    if not isinstance(value, dict):
        raise InvalidPolicy(f"{where}: must be a mapping with protocol, port and endPort")
    unknown = sorted(set(value) - {"protocol", "port", "endPort"})
    if unknown:
        raise InvalidPolicy(f"{where}: unknown field {json.dumps(str(unknown[0])[:80])}")
    protocol = value.get("protocol", "TCP")
    if protocol is None:
        protocol = "TCP"
    if protocol not in PROTOCOLS:
        raise InvalidPolicy(f"{where}.protocol: Unsupported value: "
                            f"{json.dumps(str(protocol)[:40])}: supported values: "
                            '"TCP", "UDP", "SCTP"')
    port = value.get("port")
    end = value.get("endPort")
    if isinstance(port, bool) or isinstance(end, bool):
        raise InvalidPolicy(f"{where}: port and endPort must be numbers or port names")
    if isinstance(port, int):
        if not 1 <= port <= 65535:
            raise InvalidPolicy(f"{where}.port: Invalid value: {port}: must be between 1 and "
                                "65535, inclusive")
    elif isinstance(port, str):
        if port.isdigit():  # "80" in YAML quotes: an int-or-string holding a number
            return _port({**value, "port": int(port)}, where)
        problem = svc_name_problem(port)
        if problem:
            raise InvalidPolicy(f"{where}.port: {problem}")
    elif port is not None:
        raise InvalidPolicy(f"{where}.port: must be a number or a port name")
    if end is not None:
        if not isinstance(end, int):
            raise InvalidPolicy(f"{where}.endPort: must be a number")
        if port is None:
            raise InvalidPolicy(f"{where}.endPort: Required value: may not be specified "
                                "when port is not specified")
        if not isinstance(port, int):
            raise InvalidPolicy(f"{where}.endPort: Invalid value: {end}: may not be "
                                "specified when port is a port name")
        if not port <= end <= 65535:
            raise InvalidPolicy(f"{where}.endPort: Invalid value: {end}: must be greater "
                                f"than or equal to port ({port}) and at most 65535")
    return PortSpec(str(protocol), port, end)


def svc_name_problem(name: str) -> str | None:
    """Why `name` is not an IANA service name (a container port's name), or None."""
    if (len(name) > 15 or not _SVC_NAME_RE.match(name) or "--" in name
            or not any(c.isalpha() for c in name)):
        return (f"Invalid value: {json.dumps(name[:40])}: a port name has at most 15 lower "
                "case letters, digits and single '-', with at least one letter")
    return None


def _peers(value: Any, where: str) -> tuple[Peer, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidPolicy(f"{where}: must be a list of peers")
    if len(value) > MAX_PEERS:
        raise InvalidPolicy(f"{where}: more than {MAX_PEERS} peers")
    return tuple(_peer(p, f"{where}[{i}]") for i, p in enumerate(value))


def _peer(value: Any, where: str) -> Peer:
    if not isinstance(value, dict):
        raise InvalidPolicy(f"{where}: must be a mapping with podSelector, "
                            "namespaceSelector or ipBlock")
    unknown = sorted(set(value) - {"podSelector", "namespaceSelector", "ipBlock"})
    if unknown:
        raise InvalidPolicy(f"{where}: unknown field {json.dumps(str(unknown[0])[:80])}")
    given = [k for k in ("podSelector", "namespaceSelector", "ipBlock")
             if value.get(k) is not None]
    if not given:
        raise InvalidPolicy(f"{where}: Required value: must specify a peer")
    if "ipBlock" in given:
        if len(given) > 1:
            raise InvalidPolicy(f"{where}: Forbidden: may not specify more than 1 peer type "
                                "when ipBlock is given")
        return Peer(ip_block=_ip_block(value["ipBlock"], f"{where}.ipBlock"))
    pods = value.get("podSelector")
    nss = value.get("namespaceSelector")
    return Peer(
        pod_selector=None if pods is None else parse_selector(pods, f"{where}.podSelector"),
        namespace_selector=None if nss is None else parse_selector(
            nss, f"{where}.namespaceSelector"),
    )


def _ip_block(value: Any, where: str) -> IPBlock:
    if not isinstance(value, dict):
        raise InvalidPolicy(f"{where}: must be a mapping with cidr and except")
    unknown = sorted(set(value) - {"cidr", "except"})
    if unknown:
        raise InvalidPolicy(f"{where}: unknown field {json.dumps(str(unknown[0])[:80])}")
    cidr = _cidr(value.get("cidr"), f"{where}.cidr")
    excepts = value.get("except") or []
    if not isinstance(excepts, list):
        raise InvalidPolicy(f"{where}.except: must be a list of CIDRs")
    if len(excepts) > MAX_EXCEPT:
        raise InvalidPolicy(f"{where}.except: more than {MAX_EXCEPT} entries")
    out = []
    for i, text in enumerate(excepts):
        net = _cidr(text, f"{where}.except[{i}]")
        if net.version != cidr.version or not (net.subnet_of(cidr) and net != cidr):  # type: ignore[arg-type]
            raise InvalidPolicy(f"{where}.except[{i}]: Invalid value: {json.dumps(text)}: "
                                f"must be a strict subset of `cidr` ({cidr})")
        out.append(net)
    return IPBlock(cidr, tuple(out))


def _cidr(text: Any, where: str) -> IPNetwork:
    if not isinstance(text, str) or "/" not in text:
        raise InvalidPolicy(f"{where}: Invalid value: {json.dumps(str(text)[:60])}: must be "
                            "a CIDR such as 10.0.0.0/24")
    try:
        # strict=False: Kubernetes accepts host bits set (10.0.0.1/24 means 10.0.0.0/24)
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidPolicy(f"{where}: Invalid value: {json.dumps(text[:60])}: must be a "
                            "CIDR such as 10.0.0.0/24") from None


def parse_policy_for(value: str | None, namespace: str) -> tuple[NetworkRef, ...]:
    """The NADs `k8s.v1.cni.cncf.io/policy-for` names (`[ns/]nad`, comma separated).

    No annotation: no network (upstream leaves such a policy unenforced). An annotation
    that names nothing, or an invalid name, is refused.
    """
    if value is None:
        return ()
    refs: list[NetworkRef] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        ns, sep, name = item.partition("/")
        if not sep:
            ns, name = namespace, item
        problem = (names.label_problem(ns, "namespace")
                   or names.subdomain_problem(name, "network"))
        if "/" in name or problem:
            raise InvalidPolicy(f"metadata.annotations[{POLICY_FOR_ANNOTATION}]: "
                                f"{json.dumps(item[:80])}: "
                                f"{problem or 'expected [namespace/]network-attachment name'}")
        ref = NetworkRef(ns, name)
        if ref not in refs:
            refs.append(ref)
    if not refs:
        raise InvalidPolicy(f"metadata.annotations[{POLICY_FOR_ANNOTATION}]: names no "
                            "network: expected a comma list of [namespace/]nad")
    if len(refs) > MAX_NETWORKS:
        raise InvalidPolicy(f"metadata.annotations[{POLICY_FOR_ANNOTATION}]: more than "
                            f"{MAX_NETWORKS} networks")
    return tuple(refs)


def validate_policy(obj: Object) -> None:
    """Admission: refuse an invalid MultiNetworkPolicy (InvalidPolicy, one line)."""
    parse_policy(obj)
