"""MultiNetworkPolicy semantics on a table of cases.

Written from upstream's documentation (Kubernetes' NetworkPolicy concepts page and its
recipes: default deny, allow all, podSelector/namespaceSelector AND vs OR, ipBlock with
except, endPort, named ports) and from the multi-networkpolicy README (policy-for names the
networks; a pod not selected stays open). Every case is one flow and the expected verdict.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import pytest

from multihome.attach.policy.enforce import pod_info
from multihome.attach.policy.model import EGRESS, INGRESS, Policy
from multihome.attach.policy.semantics import (
    Endpoint,
    PodInfo,
    flow_allowed,
    resolve,
    selecting,
)
from multihome.store import Object
from support.policy_world import pod, policy

NET_A, NET_B = "default/net-a", "default/net-b"
NAMESPACES = {"default": {"team": "blue"}, "other": {"team": "red"}, "third": {}}

DB = pod("default", "db", {NET_A: "10.1.0.10", NET_B: "10.2.0.10"}, {"app": "db"},
         ports=(("postgres", 5432, "TCP"), ("dns", 53, "UDP")))
WEB = pod("default", "web", {NET_A: "10.1.0.20", NET_B: "10.2.0.20"}, {"app": "web"})
CLI = pod("default", "cli", {NET_A: "10.1.0.30"}, {"app": "cli"})
RED = pod("other", "red", {NET_A: "10.1.0.40"}, {"app": "web"})
THIRD = pod("third", "x", {NET_A: "10.1.0.50"}, {"app": "web"})
OUTSIDE = Endpoint(ipaddress.ip_address("10.1.0.200"))
EXCEPTED = Endpoint(ipaddress.ip_address("10.1.0.130"))

DENY_INGRESS = {"podSelector": {}, "policyTypes": ["Ingress"]}
DENY_EGRESS = {"podSelector": {}, "policyTypes": ["Egress"]}
DB_FROM_WEB = {"podSelector": {"matchLabels": {"app": "db"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}


@dataclass
class Case:
    id: str
    specs: list[dict[str, Any]]
    src: PodInfo | Endpoint
    dst: PodInfo | Endpoint
    allowed: bool
    protocol: str = "TCP"
    port: int | None = 80
    network: str = NET_A
    policy_for: str = NET_A


CASES = [
    Case("no policy: open", [], WEB, DB, True),
    Case("default deny ingress", [DENY_INGRESS], WEB, DB, False),
    Case("default deny ingress leaves egress open", [DENY_INGRESS], DB, OUTSIDE, True),
    Case("default deny egress", [DENY_EGRESS], DB, OUTSIDE, False),
    Case("default deny egress leaves ingress open", [DENY_EGRESS], OUTSIDE, DB, True),
    Case("allow all ingress: rule {}",
         [{"podSelector": {}, "ingress": [{}], "policyTypes": ["Ingress"]}], OUTSIDE, DB, True),
    Case("allow all egress: rule {}",
         [{"podSelector": {}, "egress": [{}], "policyTypes": ["Egress"]}], DB, OUTSIDE, True),
    Case("egress rules without policyTypes default to Ingress+Egress",
         [{"podSelector": {}, "egress": [{"to": [{"podSelector": {}}]}]}], OUTSIDE, DB, False),
    Case("egress: [] without policyTypes is ingress-only",
         [{"podSelector": {}, "egress": []}], DB, OUTSIDE, True),
    Case("podSelector peer allowed", [DB_FROM_WEB], WEB, DB, True),
    Case("podSelector peer: other label denied", [DB_FROM_WEB], CLI, DB, False),
    Case("podSelector peer: same label in another namespace denied", [DB_FROM_WEB], RED, DB,
         False),
    Case("pod not selected stays open", [DB_FROM_WEB], CLI, WEB, True),
    Case("ICMP allowed by a rule without ports", [DB_FROM_WEB], WEB, DB, True, "ICMP", None),
    Case("ICMP denied by a rule with ports",
         [{"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}], WEB, DB, False, "ICMP",
         None),
    Case("namespaceSelector peer", [
        {"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"team": "red"}}}]}]}], RED, DB, True),
    Case("namespaceSelector peer: other namespace denied", [
        {"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"team": "red"}}}]}]}], THIRD, DB, False),
    Case("namespaceSelector by kubernetes.io/metadata.name", [
        {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "third"}}}]}]}], THIRD, DB, True),
    Case("namespaceSelector AND podSelector in one peer: both must hold", [
        {"podSelector": {}, "ingress": [{"from": [{
            "namespaceSelector": {"matchLabels": {"team": "red"}},
            "podSelector": {"matchLabels": {"app": "db"}}}]}]}], RED, DB, False),
    Case("namespaceSelector OR podSelector as two peers", [
        {"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"team": "red"}}},
            {"podSelector": {"matchLabels": {"app": "nothing"}}}]}]}], RED, DB, True),
    Case("empty namespaceSelector: every namespace", [
        {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}], THIRD, DB,
         True),
    Case("matchExpressions In", [
        {"podSelector": {"matchExpressions": [
            {"key": "app", "operator": "In", "values": ["db", "x"]}]},
         "policyTypes": ["Ingress"]}], WEB, DB, False),
    Case("matchExpressions NotIn does not select", [
        {"podSelector": {"matchExpressions": [
            {"key": "app", "operator": "NotIn", "values": ["db"]}]},
         "policyTypes": ["Ingress"]}], WEB, DB, True),
    Case("matchExpressions DoesNotExist peer", [
        {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchExpressions": [
            {"key": "app", "operator": "DoesNotExist"}]}}]}]}], WEB, DB, False),
    Case("ipBlock allows its range", [
        {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {
            "cidr": "10.1.0.128/25", "except": ["10.1.0.128/26"]}}]}]}], OUTSIDE, DB, True),
    Case("ipBlock except denies", [
        {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {
            "cidr": "10.1.0.128/25", "except": ["10.1.0.128/26"]}}]}]}], EXCEPTED, DB, False),
    Case("ipBlock matches a pod's address too", [
        {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.1.0.20/32"}}]}]}],
         WEB, DB, True),
    Case("egress to ipBlock", [
        {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
            {"to": [{"ipBlock": {"cidr": "10.1.0.192/26"}}]}]}], DB, OUTSIDE, True),
    Case("egress to ipBlock: other address denied", [
        {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
            {"to": [{"ipBlock": {"cidr": "10.1.0.192/26"}}]}]}], DB, EXCEPTED, False),
    Case("port allowed", [
        {"podSelector": {}, "ingress": [{"ports": [{"port": 5432}]}]}], WEB, DB, True, "TCP",
         5432),
    Case("port: other port denied", [
        {"podSelector": {}, "ingress": [{"ports": [{"port": 5432}]}]}], WEB, DB, False, "TCP",
         5433),
    Case("port: protocol defaults to TCP, UDP denied", [
        {"podSelector": {}, "ingress": [{"ports": [{"port": 5432}]}]}], WEB, DB, False, "UDP",
         5432),
    Case("protocol without port: every port of it", [
        {"podSelector": {}, "ingress": [{"ports": [{"protocol": "UDP"}]}]}], WEB, DB, True,
         "UDP", 9999),
    Case("endPort range: inside", [
        {"podSelector": {}, "ingress": [{"ports": [{"port": 32000, "endPort": 32768}]}]}],
         WEB, DB, True, "TCP", 32768),
    Case("endPort range: outside", [
        {"podSelector": {}, "ingress": [{"ports": [{"port": 32000, "endPort": 32768}]}]}],
         WEB, DB, False, "TCP", 32769),
    Case("SCTP port", [
        {"podSelector": {}, "ingress": [{"ports": [{"protocol": "SCTP", "port": 3868}]}]}],
         WEB, DB, True, "SCTP", 3868),
    Case("named port on ingress: the selected pod's number", [
        {"podSelector": {}, "ingress": [{"ports": [{"port": "postgres"}]}]}], WEB, DB, True,
         "TCP", 5432),
    Case("named port with the wrong protocol does not resolve", [
        {"podSelector": {}, "ingress": [{"ports": [{"port": "postgres", "protocol": "UDP"}]}]}],
         WEB, DB, False, "UDP", 5432),
    Case("named port on egress: the peer's number", [
        {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
         "egress": [{"ports": [{"port": "dns", "protocol": "UDP"}]}]}], WEB, DB, True, "UDP",
         53),
    Case("named port on egress to a pod without it", [
        {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Egress"],
         "egress": [{"ports": [{"port": "dns", "protocol": "UDP"}]}]}], DB, WEB, False, "UDP",
         53),
    Case("union: a second policy allows what the first does not", [
        DB_FROM_WEB, {"podSelector": {"matchLabels": {"app": "db"}},
                      "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "cli"}}}]}]}],
         CLI, DB, True),
    Case("union: deny-all plus an allow is the allow", [DENY_INGRESS, DB_FROM_WEB], WEB, DB,
         True),
    Case("sender's egress and receiver's ingress both needed", [
        DB_FROM_WEB, {"podSelector": {"matchLabels": {"app": "web"}},
                      "policyTypes": ["Egress"]}], WEB, DB, False),
    Case("policy on net-a does not touch net-b", [DENY_INGRESS], WEB, DB, True,
         network=NET_B),
    Case("policy-for net-b isolates net-b only", [DENY_INGRESS], WEB, DB, True,
         policy_for=NET_B),
    Case("policy-for net-b, flow on net-b", [DENY_INGRESS], WEB, DB, False,
         network=NET_B, policy_for=NET_B),
    Case("policy-for without namespace means the policy's namespace", [DENY_INGRESS], WEB,
         DB, False, policy_for="net-a"),
    Case("policy-for a list", [DENY_INGRESS], WEB, DB, False, network=NET_B,
         policy_for="net-a, default/net-b"),
]


def _policies(case: Case) -> list[Policy]:
    return [policy(f"p{i}", spec, policy_for=case.policy_for)
            for i, spec in enumerate(case.specs)]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_flow_verdict_matches_upstream_semantics(case: Case) -> None:
    verdict = flow_allowed(_policies(case), case.src, case.dst, case.network, case.protocol,
                           case.port, NAMESPACES)
    assert verdict is case.allowed


def test_a_policy_without_policy_for_selects_nothing() -> None:
    pols = [policy("p", DENY_INGRESS, policy_for=None)]
    assert flow_allowed(pols, WEB, DB, NET_A, "TCP", 80, NAMESPACES)
    assert selecting(pols, DB) == []


def test_a_policy_in_another_namespace_does_not_select() -> None:
    pols = [policy("p", DENY_INGRESS, namespace="other", policy_for="default/net-a")]
    assert flow_allowed(pols, WEB, DB, NET_A, "TCP", 80, NAMESPACES)
    assert selecting(pols, RED)[0].name == "p"


def test_resolve_gives_the_peers_addresses_on_the_same_network() -> None:
    pols = [policy("p", DB_FROM_WEB, policy_for="net-a,net-b")]
    iso = resolve(pols, DB, NET_B, INGRESS, [DB, WEB, CLI, RED], NAMESPACES)
    assert iso is not None and iso.policies == ("default/p",)
    (allow,) = iso.allows
    assert [str(ip) for ip in allow.addresses] == ["10.2.0.20"]
    assert allow.ports is None
    assert resolve(pols, DB, NET_B, EGRESS, [DB, WEB], NAMESPACES) is None
    assert resolve(pols, WEB, NET_B, INGRESS, [DB, WEB], NAMESPACES) is None


def test_resolve_deny_all_has_no_allows() -> None:
    iso = resolve([policy("p", DENY_INGRESS)], DB, NET_A, INGRESS, [DB, WEB], NAMESPACES)
    assert iso is not None and iso.allows == ()


@pytest.mark.parametrize("status", ["[" * 5000 + "]" * 5000, "{not json", '"x"', "[1, 2]",
                                    json.dumps([{"name": 5, "ips": "10.0.0.1"}]),
                                    json.dumps([{"name": "a/b", "ips": [None, "junk",
                                                                        "10.0.0.9"]}])])
def test_a_hostile_network_status_reads_as_what_it_validly_says(status: str) -> None:
    obj = Object.from_manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p", "namespace": "default",
        "annotations": {"k8s.v1.cni.cncf.io/network-status": status}}})
    info = pod_info(obj)
    assert dict(info.addresses) in ({}, {"a/b": (ipaddress.ip_address("10.0.0.9"),)})


def test_container_ports_that_are_not_ports_are_ignored() -> None:
    obj = Object.from_manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p", "namespace": "default"}, "spec": {"containers": [{"name": "c", "ports": [
            {"name": "zero", "containerPort": 0}, {"name": "big", "containerPort": 70000},
            {"name": "flag", "containerPort": True}, {"name": "text", "containerPort": "80"},
            {"name": "ok", "containerPort": 8080}, "junk"]}, "junk"]}})
    assert [(p.name, p.port) for p in pod_info(obj).ports] == [("ok", 8080)]
