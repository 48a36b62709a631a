"""MultiNetworkPolicy objects: the kind's names, defaulting, and one-line refusals.

The refusals are the API server's NetworkPolicy validation (a peer is ipBlock alone or
selectors, `except` strictly inside `cidr`, `endPort` only after a numeric `port`, the
protocols TCP/UDP/SCTP, label selector operators) plus the policy-for annotation and
bounds on every list.
"""

from __future__ import annotations

from typing import Any

import pytest

from multihome.attach.policy.model import (
    EGRESS,
    INGRESS,
    MAX_RULES,
    InvalidPolicy,
    NetworkRef,
    PortSpec,
    parse_policy,
)
from multihome.store import MULTI_POLICY, Object, kind_info
from support.policy_world import policy, policy_manifest


@pytest.mark.parametrize("spelling", ["multi-policy", "multi-networkpolicy",
                                      "multi-networkpolicies", "MultiNetworkPolicy",
                                      "multi-networkpolicies.k8s.cni.cncf.io"])
def test_kubectl_spellings_resolve_to_the_kind(spelling: str) -> None:
    info = kind_info(spelling)
    assert (info.kind, info.api_version) == (MULTI_POLICY, "k8s.cni.cncf.io/v1beta1")
    assert info.ref("p") == "multinetworkpolicy.k8s.cni.cncf.io/p"


def test_policy_types_default_as_kubernetes_does() -> None:
    assert policy("p", {"podSelector": {}}).policy_types == {INGRESS}
    assert policy("p", {"podSelector": {}, "egress": [{}]}).policy_types == {INGRESS, EGRESS}
    assert policy("p", {"podSelector": {}, "egress": []}).policy_types == {INGRESS}
    assert policy("p", {"podSelector": {}, "policyTypes": ["Egress"]}).policy_types == {EGRESS}


def test_ports_and_policy_for_are_parsed() -> None:
    p = policy("p", {"podSelector": {}, "ingress": [{"ports": [
        {"port": 80}, {"port": "http", "protocol": "UDP"}, {"port": 1000, "endPort": 2000},
        {"port": "8080"}, {"protocol": "SCTP"}]}]}, policy_for=" a , other/b,a")
    assert p.ingress[0].ports == (PortSpec("TCP", 80), PortSpec("UDP", "http"),
                                  PortSpec("TCP", 1000, 2000), PortSpec("TCP", 8080),
                                  PortSpec("SCTP", None))
    assert p.networks == (NetworkRef("default", "a"), NetworkRef("other", "b"))


def _spec_with(**rule: Any) -> dict[str, Any]:
    return {"podSelector": {}, "ingress": [rule]}


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no spec", {}, "spec"),
    ("no podSelector", {"ingress": [{}]}, "spec.podSelector: Required"),
    ("podSelector not a mapping", {"podSelector": "app=db"}, "spec.podSelector"),
    ("unknown spec field", {"podSelector": {}, "ingres": []}, 'unknown field "ingres"'),
    ("policyTypes junk", {"podSelector": {}, "policyTypes": ["Both"]}, "spec.policyTypes[0]"),
    ("policyTypes duplicate", {"podSelector": {}, "policyTypes": ["Ingress", "Ingress"]},
     "Duplicate"),
    ("ingress not a list", {"podSelector": {}, "ingress": {"from": []}}, "spec.ingress"),
    ("too many rules", {"podSelector": {}, "ingress": [{}] * (MAX_RULES + 1)},
     f"more than {MAX_RULES} rules"),
    ("empty peer", _spec_with(**{"from": [{}]}), "must specify a peer"),
    ("ipBlock with a selector", _spec_with(**{"from": [
        {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}), "more than 1 peer type"),
    ("ipBlock without cidr", _spec_with(**{"from": [{"ipBlock": {}}]}), "ipBlock.cidr"),
    ("ipBlock cidr junk", _spec_with(**{"from": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}),
     "must be a CIDR"),
    ("except outside cidr", _spec_with(**{"from": [{"ipBlock": {
        "cidr": "10.0.0.0/24", "except": ["10.0.1.0/28"]}}]}), "strict subset"),
    ("except equal to cidr", _spec_with(**{"from": [{"ipBlock": {
        "cidr": "10.0.0.0/24", "except": ["10.0.0.0/24"]}}]}), "strict subset"),
    ("except of another family", _spec_with(**{"from": [{"ipBlock": {
        "cidr": "10.0.0.0/24", "except": ["fd00::/64"]}}]}), "strict subset"),
    ("port zero", _spec_with(ports=[{"port": 0}]), "between 1 and 65535"),
    ("port too high", _spec_with(ports=[{"port": 70000}]), "between 1 and 65535"),
    ("port a bool", _spec_with(ports=[{"port": True}]), "numbers or port names"),
    ("port a list", _spec_with(ports=[{"port": [80]}]), "number or a port name"),
    ("port name invalid", _spec_with(ports=[{"port": "Bad_Name"}]), "port name"),
    ("port name too long", _spec_with(ports=[{"port": "a" * 16}]), "port name"),
    ("protocol ICMP", _spec_with(ports=[{"protocol": "ICMP"}]), '"TCP", "UDP", "SCTP"'),
    ("endPort without port", _spec_with(ports=[{"endPort": 90}]), "endPort: Required"),
    ("endPort below port", _spec_with(ports=[{"port": 90, "endPort": 80}]), "greater"),
    ("endPort with a named port", _spec_with(ports=[{"port": "http", "endPort": 80}]),
     "port name"),
    ("selector operator junk", {"podSelector": {"matchExpressions": [
        {"key": "a", "operator": "Equals", "values": ["b"]}]}}, "operator"),
    ("In without values", {"podSelector": {"matchExpressions": [
        {"key": "a", "operator": "In"}]}}, "non-empty"),
    ("Exists with values", {"podSelector": {"matchExpressions": [
        {"key": "a", "operator": "Exists", "values": ["b"]}]}}, "may not be specified"),
    ("label value invalid", {"podSelector": {"matchLabels": {"app": "a b"}}},
     "label value"),
    ("label key invalid", {"podSelector": {"matchLabels": {"-app": "a"}}}, "label key"),
]


@pytest.mark.parametrize(("what", "spec", "needle"), BAD, ids=[b[0] for b in BAD])
def test_malformed_policies_are_refused_in_one_line(what: str, spec: dict[str, Any],
                                                    needle: str) -> None:
    body = policy_manifest("p", spec)
    if not spec:
        del body["spec"]
    with pytest.raises(InvalidPolicy) as e:
        parse_policy(Object.from_manifest(body))
    assert needle in str(e.value)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


@pytest.mark.parametrize("value", ["", " , ", "a/b/c", "Bad_Name", "ns/", "/nad",
                                   "x" * 300])
def test_bad_policy_for_annotations_are_refused(value: str) -> None:
    with pytest.raises(InvalidPolicy) as e:
        policy("p", {"podSelector": {}}, policy_for=value)
    assert "policy-for" in str(e.value) and "\n" not in str(e.value)
