"""Releasing the cluster-wide IPAM's addresses whose pod is gone.

CNI DEL frees an address when a pod goes, but not when the DEL never came or failed (the
pool unreachable at the time, a node lost, a runtime that skipped it). A pass reads every
pool, and frees each allocation whose `podref` names a pod that does not exist, with the
same version-guarded writes as allocation, so it can run on every node at once. A pod is
gone only when the list of pods lacks it *and* a fresh read says "not found": a pod
created after the list was taken is never mistaken for a leak, and a store that cannot
answer frees nothing. Allocations without a podref (a runtime that passed no pod) are left
to CNI GC, which knows the valid attachments.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from multihome.ipam import claims, pools
from multihome.ipam.ranges import default_window
from multihome.ipam.whereabouts_config import PoolRange
from multihome.store.objects import IPAM_CLAIM, IPPOOL, OVERLAPPING_RESERVATION
from multihome.store.pools import PoolDoc, PoolStore

log = logging.getLogger(__name__)

# Bounds of one pass: pools read, and pods confirmed gone by a read of their own.
MAX_POOLS = 10_000
MAX_CONFIRMS = 1_000


@dataclass
class Report:
    released: list[tuple[str, str, str]] = field(default_factory=list)  # (pool, ip, podref)
    reservations: list[str] = field(default_factory=list)
    kept_unknown: int = 0


def _whole_range(doc: PoolDoc) -> PoolRange | None:
    """The range a stored pool covers (to decode its offsets), None if unreadable."""
    text = doc.spec.get("range")
    if not isinstance(text, str):
        return None
    try:
        net = ipaddress.ip_interface(text).network
    except ValueError:
        return None
    first, last = default_window(net)
    return PoolRange(net, net.network_address, max(first, last, key=int))


class _Judge:
    """Whether a podref's pod is gone: absent from `live` and confirmed by `lookup`
    (True: exists, False: not found, None: cannot tell); answers are remembered."""

    def __init__(self, live: set[str], lookup: Callable[[str], bool | None]) -> None:
        self.live, self.lookup = live, lookup
        self.answers: dict[str, bool | None] = {}  # podref -> gone (None: cannot tell)

    @property
    def unknown(self) -> int:
        return sum(1 for v in self.answers.values() if v is None)

    def gone(self, podref: str) -> bool:
        if not podref or podref in self.live:
            return False
        if podref not in self.answers:
            if len(self.answers) >= MAX_CONFIRMS:
                return False  # the rest waits for the next pass
            found = self.lookup(podref)
            self.answers[podref] = None if found is None else not found
        return self.answers[podref] is True


def _claim_lookup(store: PoolStore) -> Callable[[str], bool | None]:
    def lookup(ref: str) -> bool | None:
        ns, _, name = ref.partition("/")
        try:
            return store.read(IPAM_CLAIM, name, ns) is not None
        except Exception as e:  # any store, any failure: keep the address
            log.warning("IPAM reconciler: cannot read IPAMClaim %s (%s)", ref, e)
            return None

    return lookup


def reconcile(stores: list[PoolStore], live: set[str],
              lookup: Callable[[str], bool | None]) -> Report:
    """One pass over the pools (and reservations) of every store in `stores`; the first
    holds the IPAMClaims (an address bound to a claim goes when the claim goes)."""
    judge, report = _Judge(live, lookup), Report()
    claim_judge = _Judge(set(), _claim_lookup(stores[0])) if stores else judge

    def owner_gone(o: pools.Owner) -> bool:
        ref = claims.ref_of_owner(o)
        if ref is not None:
            return claim_judge.gone(str(ref))
        return not claims.is_claim_owned(o) and judge.gone(o.podref)

    for store in stores:
        for doc in store.list(IPPOOL)[:MAX_POOLS]:
            r = _whole_range(doc)
            if r is None:
                continue
            if not any(owner_gone(o) for o in pools.allocations(doc, r).values()):
                continue
            freed_owners = {ip: o for ip, o in pools.allocations(doc, r).items()
                            if owner_gone(o)}
            for ip in pools.release(store, r, doc.name, owner_gone):
                podref = freed_owners[ip].podref if ip in freed_owners else ""
                report.released.append((doc.name, str(ip), podref))
                log.info("IPAM reconciler: released %s of pool %s (pod %s is gone)",
                         ip, doc.name, podref)
        for res in store.list(OVERLAPPING_RESERVATION)[:MAX_POOLS]:
            holder = res.spec.get("containerid")
            if isinstance(holder, str) and holder.startswith(claims.OWNER_PREFIX):
                if not claim_judge.gone(holder.removeprefix(claims.OWNER_PREFIX)):
                    continue
                store.remove(OVERLAPPING_RESERVATION, res.name)
                report.reservations.append(res.name)
                continue
            ref = res.spec.get("podref")
            if isinstance(ref, str) and judge.gone(ref):
                store.remove(OVERLAPPING_RESERVATION, res.name)
                report.reservations.append(res.name)
    report.kept_unknown = judge.unknown + (claim_judge.unknown if claim_judge is not judge
                                           else 0)
    return report


def release_owner(stores: list[PoolStore], owner_id: str) -> list[str]:
    """Free at once every address (and reservation) whose owner `id` is `owner_id`: what
    deleting an IPAMClaim's VM does, without waiting for the next pass."""
    freed: list[str] = []
    for store in stores:
        for doc in store.list(IPPOOL)[:MAX_POOLS]:
            r = _whole_range(doc)
            if r is not None:
                freed += [str(ip) for ip in pools.release(
                    store, r, doc.name, lambda o: o.container_id == owner_id)]
        for res in store.list(OVERLAPPING_RESERVATION)[:MAX_POOLS]:
            if res.spec.get("containerid") == owner_id:
                store.remove(OVERLAPPING_RESERVATION, res.name)
    return freed
