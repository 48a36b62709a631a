"""`get` / `describe` of MultiNetworkPolicies: kubectl's NetworkPolicy wording.

`get multi-policy` shows POD-SELECTOR and NETWORKS (the policy-for annotation) like
`kubectl get networkpolicy` shows POD-SELECTOR; `describe` adds what the policy allows
in kubectl describe's words and which pods of the store it selects now.
"""

from __future__ import annotations

from multihome import present
from multihome.attach.policy.enforce import load_policies, pod_info
from multihome.attach.policy.model import EGRESS, INGRESS, InvalidPolicy, Policy, parse_policy
from multihome.attach.policy.semantics import selecting
from multihome.store import MULTI_POLICY, POD, Object, Store


def _columns(obj: Object, wide: bool) -> list[tuple[str, str]]:
    try:
        policy = parse_policy(obj)
    except InvalidPolicy:
        return [("POD-SELECTOR", "<invalid>"), ("NETWORKS", "<invalid>")]
    nets = ",".join(str(n) for n in policy.networks) or "<none>"
    return [("POD-SELECTOR", str(policy.pod_selector)), ("NETWORKS", nets)]


present.register_columns(MULTI_POLICY, _columns)


def _direction(policy: Policy, direction: str) -> list[str]:
    word = "ingress" if direction == INGRESS else "egress"
    if direction not in policy.policy_types:
        return [f"  Not affecting {word} traffic"]
    rules = policy.ingress if direction == INGRESS else policy.egress
    if not rules:
        return [f"  Allowing {word} traffic:", "    <none> (Selected pods are isolated for "
                f"{word} connectivity)"]
    lines = [f"  Allowing {word} traffic:"]
    peer_word = "From" if direction == INGRESS else "To"
    for i, rule in enumerate(rules):
        if i:
            lines.append("    ----------")
        ports = ", ".join(str(p) for p in rule.ports) or "<any> (traffic allowed to all ports)"
        lines.append(f"    To Port: {ports}")
        if not rule.peers:
            lines.append(f"    {peer_word}: <any> (traffic not restricted by destination)"
                         if direction == EGRESS else
                         f"    {peer_word}: <any> (traffic not restricted by source)")
        else:
            lines.append(f"    {peer_word}:")
            lines += [f"      {peer}" for peer in rule.peers]
    return lines


def describe_sections(store: Store, obj: Object) -> list[str]:
    """kubectl describe networkpolicy's summary, the networks and the selected pods."""
    try:
        policy = parse_policy(obj)
    except InvalidPolicy as e:
        return [f"Invalid:       {e}"]
    nets = (", ".join(str(n) for n in policy.networks)
            or "<none> (no policy-for annotation: enforced nowhere)")
    lines = ["Summary:", f"  PodSelector:     {policy.pod_selector}",
             f"  Networks:        {nets}"]
    lines += _direction(policy, INGRESS) + _direction(policy, EGRESS)
    lines.append(f"  Policy Types: {', '.join(sorted(policy.policy_types))}")
    pods = [pod_info(o) for o in store.list(POD, policy.namespace)]
    chosen = [p.name for p in pods if selecting([policy], p)]
    lines.append(f"Selected Pods:  {', '.join(chosen) or '<none>'}")
    return lines


def policies_selecting(store: Store, pod: Object) -> list[str]:
    """ns/name of every policy that selects the pod on one of its networks."""
    return [p.key for p in selecting(load_policies(store), pod_info(pod))]
