"""Persistent IPs through IPAMClaims (multi-network spec v1.3, k8snetworkplumbingwg/ipamclaims).

A network selection element's `ipam-claim-reference` reaches the IPAM as
`args.cni["ipam-claim-reference"]` (where whereabouts reads it too). The address is then
bound to the claim, not the pod: the allocation's owner is the claim (its `id` is
`ipamclaim/<namespace>/<name>`), so a VM's next launcher pod, after a restart, a stop and
start or a migration, gets the same address; DEL and GC of a pod leave it alone, and it
is freed when the claim is deleted (the reconciler). The claim's `status.ips` (CIDRs) and
`status.ownerPod` are written; an address recorded there is asked for again, so the
claim survives even its pool being recreated.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from multihome.cni.errors import InvalidConfig, TryAgainLater
from multihome.cni.result import IPConfig
from multihome.cni.skel import Call
from multihome.ipam.pools import Owner, Retry
from multihome.ipam.ranges import IPAddress
from multihome.store.names import subdomain_problem
from multihome.store.objects import IPAM_CLAIM
from multihome.store.pools import PoolDoc, PoolStore

CLAIM_ARG = "ipam-claim-reference"
OWNER_PREFIX = "ipamclaim/"


@dataclass(frozen=True)
class ClaimRef:
    namespace: str
    name: str

    @property
    def owner_id(self) -> str:
        return f"{OWNER_PREFIX}{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def is_claim_owned(owner: Owner) -> bool:
    return owner.container_id.startswith(OWNER_PREFIX)


def ref_of_owner(owner: Owner) -> ClaimRef | None:
    if not is_claim_owned(owner):
        return None
    ns, _, name = owner.container_id.removeprefix(OWNER_PREFIX).partition("/")
    return ClaimRef(ns, name) if ns and name else None


def claim_ref(call: Call) -> ClaimRef | None:
    """The claim this call's attachment names, in the pod's namespace; None without one."""
    raw = call.conf.cni_args.get(CLAIM_ARG)
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or subdomain_problem(raw, "IPAMClaim name"):
        raise InvalidConfig(f"args.cni '{CLAIM_ARG}' must name an IPAMClaim (a DNS "
                            f"subdomain), got {raw!r}")
    namespace = call.cmd.arg("K8S_POD_NAMESPACE")
    if not namespace:
        raise InvalidConfig(f"'{CLAIM_ARG}' {raw} needs the pod's namespace "
                            "(CNI_ARGS K8S_POD_NAMESPACE), where the claim lives")
    return ClaimRef(namespace, raw)


def claim_owner(ref: ClaimRef, podref: str) -> Owner:
    """The owner an address is bound to: the claim (one per VM NIC), whatever pod and
    interface name the VM's current launcher pod has."""
    return Owner(ref.owner_id, "", podref)


def read_claim(store: PoolStore, ref: ClaimRef) -> PoolDoc:
    doc = store.read(IPAM_CLAIM, ref.name, ref.namespace)
    if doc is None:
        # the claim is made next to the VM, maybe a moment after its pod: retry later
        raise TryAgainLater(f"IPAMClaim {ref} does not exist; create it (or remove "
                            f"'{CLAIM_ARG}' from the network selection)")
    return doc


def recorded_ips(doc: PoolDoc) -> list[IPAddress]:
    """The addresses in the claim's status.ips (CIDRs, or plain addresses)."""
    raw = (doc.status or {}).get("ips")
    out: list[IPAddress] = []
    for text in raw if isinstance(raw, list) else []:
        if isinstance(text, str):
            try:
                out.append(ipaddress.ip_interface(text.strip()).ip)
            except ValueError:
                continue
    return out


def record(store: PoolStore, ref: ClaimRef, ips: list[IPConfig], pod: str) -> None:
    """status.ips and status.ownerPod of the claim, version-guarded."""
    retry = Retry(f"writing the status of IPAMClaim {ref}")
    want = [str(ip.address) for ip in ips]
    while True:
        doc = read_claim(store, ref)
        status = dict(doc.status or {})
        if status.get("ips") == want and (status.get("ownerPod") or {}).get("name") == pod:
            return
        status["ips"] = want
        if pod:
            status["ownerPod"] = {"name": pod}
        doc.status = status
        if store.write(IPAM_CLAIM, doc, ref.namespace) is not None:
            return
        retry.again()
