"""The lab's side of persistent IPs: an IPAMClaim per VM NIC whose network asks for them.

As KubeVirt's ipam-extensions does in a cluster: when a VM's network is a NAD whose
config says `"allowPersistentIPs": true` (OVN-Kubernetes' key), `vm run` makes (or finds)
the claim `<vm>.<nad>` in the VM's namespace and names it in the launcher pod's selection
(`ipam-claim-reference`), so the address stays with the VM across launcher pods. Deleting
the VM deletes its claims and frees their addresses at once.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from typing import Any

from multihome.attach.naming import assign_names
from multihome.attach.selection import NetworkSelection, parse_networks_annotation
from multihome.ipam.claims import ClaimRef
from multihome.ipam.reconcile import release_owner
from multihome.store import NAD, AlreadyExists, NotFound, Object, Store
from multihome.store.objects import IPAM_CLAIM
from multihome.store.pools import ObjectPools, pool_namespace
from multihome.vm.errors import VMError

VM_LABEL = "multihome.io/vm"
_UNSAFE = re.compile(r"[^a-z0-9.-]")  # what a claim's name (a DNS subdomain) cannot hold


def _persistent(store: Store, namespace: str, name: str) -> bool:
    try:
        text = store.get(NAD, namespace, name).spec.get("config", "")
        config: Any = json.loads(text) if isinstance(text, str) and text else {}
    except (NotFound, ValueError):
        return False  # the engine reports an unknown or broken NAD itself
    if not isinstance(config, dict):
        return False
    plugins = [p for p in config.get("plugins") or [] if isinstance(p, dict)]
    return any(c.get("allowPersistentIPs") is True for c in [config, *plugins])


def claim_names(vm: str, elements: Sequence[NetworkSelection], pod: str) -> list[str]:
    """The claim of each element: `<vm>.<nad>`, and `<vm>.<nad>.<ifname>` for each further
    NIC on a NAD of that name (a claim is one NIC's: two NICs naming one claim would
    share an owner, so one address). A function of the NIC's NAD, interface and order
    alone, so a restart, a migration and a hot-plug (which append) name it again."""
    ifnames = assign_names([e.interface for e in elements], pod)
    seen: set[str] = set()
    names: list[str] = []
    for element, ifname in zip(elements, ifnames, strict=True):
        name = f"{vm}.{element.name}"
        if element.name in seen:
            name += "." + _UNSAFE.sub("-", ifname.lower()).strip("-.")
        seen.add(element.name)
        if name in names:
            raise VMError("pod", f"two NICs of VM {vm} would share IPAMClaim {name}",
                          "rename a network or an interface")
        names.append(name)
    return names


def with_claims(store: Store, namespace: str, vm: str, pod: str, selection: str) -> str:
    """The launcher pod's selection, with a claim named for each network that asks for
    persistent IPs (the claims made if missing); unchanged when none does."""
    elements = parse_networks_annotation(selection, namespace, pod) if selection else []
    wanted = [_persistent(store, e.namespace, e.name) for e in elements]
    if not any(wanted):
        return selection
    names = claim_names(vm, elements, f"{namespace}/{pod}")
    out: list[dict[str, Any]] = []
    for element, persistent, claim in zip(elements, wanted, names, strict=True):
        item = element.to_dict()
        if persistent:
            with contextlib.suppress(AlreadyExists):
                store.create(Object.from_manifest({
                    "apiVersion": "k8s.cni.cncf.io/v1alpha1", "kind": IPAM_CLAIM,
                    "metadata": {"name": claim, "namespace": namespace,
                                 "labels": {VM_LABEL: vm}},
                    "spec": {"network": element.qualified_name,
                             "interface": element.interface or ""}}))
            item["ipam-claim-reference"] = claim
        out.append(item)
    return json.dumps(out)


def drop(store: Store, namespace: str, vm: str) -> list[str]:
    """Delete the VM's claims and free their addresses; the addresses freed."""
    freed: list[str] = []
    for claim in store.list(IPAM_CLAIM, namespace):
        if claim.labels.get(VM_LABEL) != vm:
            continue
        with contextlib.suppress(NotFound):
            store.delete(IPAM_CLAIM, namespace, claim.name)
        freed += release_owner([ObjectPools(store, pool_namespace())],
                               ClaimRef(namespace, claim.name).owner_id)
    return freed
