"""Builders for MultiNetworkPolicy tests: manifests, parsed policies and pods on networks."""

from __future__ import annotations

import ipaddress
from typing import Any

from multihome.attach.policy.model import POLICY_FOR_ANNOTATION, Policy, parse_policy
from multihome.attach.policy.semantics import ContainerPort, PodInfo
from multihome.store import MULTI_POLICY, Object


def policy_manifest(name: str, spec: dict[str, Any], *, namespace: str = "default",
                    policy_for: str | None = "default/net-a") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if policy_for is not None:
        meta["annotations"] = {POLICY_FOR_ANNOTATION: policy_for}
    return {"apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": MULTI_POLICY, "metadata": meta,
            "spec": spec}


def policy(name: str, spec: dict[str, Any], *, namespace: str = "default",
           policy_for: str | None = "default/net-a") -> Policy:
    body = policy_manifest(name, spec, namespace=namespace, policy_for=policy_for)
    return parse_policy(Object.from_manifest(body))


def pod(namespace: str, name: str, ips: dict[str, str], labels: dict[str, str] | None = None,
        ports: tuple[tuple[str, int, str], ...] = ()) -> PodInfo:
    """A pod with one address per network (`{"default/net-a": "10.1.0.2"}`)."""
    return PodInfo(namespace, name, dict(labels or {}),
                   {net: (ipaddress.ip_address(ip),) for net, ip in ips.items()},
                   tuple(ContainerPort(n, p, proto) for n, p, proto in ports))
