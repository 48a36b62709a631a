"""The cluster-wide allocator: plain functions over a :class:`PoolStore`.

An IPPool holds `spec.allocations`, keyed by the address's offset from the pool's range
(whereabouts' layout), each `{id: containerID, podref: "ns/name", ifname}`. Allocation
reads the pool, takes the lowest free address of the window (skipping the gateway, the
`exclude` CIDRs and what is held), and writes the pool back guarded by the version it
read; a lost race re-reads and tries again, a bounded number of times. Allocation is
idempotent per (containerID, ifname): a repeated ADD gets the address it already holds.

With overlapping ranges (whereabouts' default), an address is also reserved cluster-wide
by an OverlappingRangeIPReservation named after it, created before the pool write: two
pools whose ranges overlap never hand out one address twice, and two writers racing for
one address learn it from the create (exists) before either writes its pool.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multihome.cni.errors import CNIError, TryAgainLater
from multihome.ipam.ranges import IPAddress
from multihome.ipam.whereabouts_config import PoolRange
from multihome.store.objects import IPPOOL, OVERLAPPING_RESERVATION
from multihome.store.pools import PoolDoc, PoolStore

# A write lost to another writer is retried this many times, with a random pause that
# grows up to MAX_BACKOFF_S; hundreds of pods racing on one pool settle well within it.
MAX_ATTEMPTS = 200
MAX_BACKOFF_S = 0.5
DEADLINE_S = 30.0
# Addresses skipped because another pool's owner reserved them, per call.
MAX_REFUSED = 4096


@dataclass(frozen=True)
class Owner:
    container_id: str
    ifname: str
    podref: str = ""

    def same(self, other: Owner) -> bool:
        return self.container_id == other.container_id and self.ifname == other.ifname

    def to_json(self) -> dict[str, str]:
        out = {"id": self.container_id, "podref": self.podref}
        if self.ifname:
            out["ifname"] = self.ifname
        return out

    @classmethod
    def from_json(cls, raw: Any) -> Owner | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            return None
        podref, ifname = raw.get("podref", ""), raw.get("ifname", "")
        return cls(raw["id"], ifname if isinstance(ifname, str) else "",
                   podref if isinstance(podref, str) else "")


class PoolExhausted(CNIError):
    """No free address is left in a range."""


def _normalize(text: str) -> str:
    """whereabouts' object-name form of an address or CIDR: ':' and '/' become '-'."""
    if text.endswith(":"):
        text += "0"
    return text.replace(":", "-").replace("/", "-")


def pool_name(cidr: str, network_name: str = "", node: str = "") -> str:
    """The IPPool's name as whereabouts derives it from the range (and node slice)."""
    parts = [p for p in (network_name, node) if p]
    return "-".join([*parts, _normalize(cidr)])


def reservation_name(ip: IPAddress, network_name: str = "") -> str:
    name = _normalize(str(ip))
    return f"{network_name}-{name}" if network_name else name


def _base(spec: dict[str, Any], r: PoolRange) -> int:
    """The address offsets count from: the IP of `spec.range` (whereabouts parses the
    range with ParseCIDR, so a range written with host bits counts from those)."""
    text = spec.get("range")
    if isinstance(text, str):
        try:
            return int(ipaddress.ip_interface(text).ip)
        except ValueError:
            pass
    return int(r.subnet.network_address)


def _address(r: PoolRange, value: int) -> IPAddress:
    return ipaddress.IPv4Address(value) if r.family == 4 else ipaddress.IPv6Address(value)


def allocations(doc: PoolDoc | None, r: PoolRange) -> dict[IPAddress, Owner]:
    """The pool's allocations by address; keys that are not offsets are skipped, as
    whereabouts skips them."""
    if doc is None:
        return {}
    raw = doc.spec.get("allocations")
    if not isinstance(raw, dict):
        return {}
    base, out = _base(doc.spec, r), {}
    for key, value in raw.items():
        owner = Owner.from_json(value)
        if owner is None or not isinstance(key, str) or not key.isdigit():
            continue
        addr = base + int(key)
        if addr <= int(r.subnet.broadcast_address):
            out[_address(r, addr)] = owner
    return out


def _with(doc: PoolDoc | None, name: str, r: PoolRange,
          held: dict[IPAddress, Owner]) -> PoolDoc:
    spec: dict[str, Any] = dict(doc.spec) if doc is not None else {"range": r.cidr}
    base = _base(spec, r)
    spec["allocations"] = {str(int(ip) - base): o.to_json()
                           for ip, o in sorted(held.items(), key=lambda kv: int(kv[0]))}
    return PoolDoc(name, spec, doc.status if doc else None, doc.version if doc else 0,
                   dict(doc.labels) if doc else {})


def lowest_free(r: PoolRange, taken: set[IPAddress]) -> IPAddress | None:
    """The lowest usable address of the window not in `taken`, in O(taken + excludes)
    steps whatever the window's size."""
    value, end = int(r.start), int(r.end)
    for _ in range(len(taken) + len(r.exclude) + 2):
        if value > end:
            return None
        ip = _address(r, value)
        net = r.excluded(ip)
        if net is not None:
            value = int(net.broadcast_address) + 1
        elif ip == r.gateway or ip in taken:
            value += 1
        else:
            return ip
    return None


class Retry:
    """Bounded retries with a random pause that grows with the attempts and with how long
    one attempt takes (racing writers spread out by about one write's time, whether a
    write costs 1 ms on SQLite or 50 ms through an API server)."""

    def __init__(self, what: str) -> None:
        self.what, self.attempt = what, 0
        self.deadline = time.monotonic() + DEADLINE_S

    def again(self, attempt_s: float = 0.0) -> None:
        self.attempt += 1
        if self.attempt >= MAX_ATTEMPTS or time.monotonic() > self.deadline:
            raise TryAgainLater(f"{self.what}: gave up after {self.attempt} attempts lost "
                                "to other writers of the pool; try again")
        unit = max(0.001, attempt_s)
        time.sleep(random.uniform(0, min(MAX_BACKOFF_S, unit * 2 ** min(self.attempt, 4))))


def _reserve(store: PoolStore, ip: IPAddress, owner: Owner, network_name: str) -> bool:
    """The cluster-wide reservation of `ip`; False when someone else holds it."""
    name = reservation_name(ip, network_name)
    spec = {"containerid": owner.container_id, "podref": owner.podref}
    if owner.ifname:
        spec["ifname"] = owner.ifname
    if store.write(OVERLAPPING_RESERVATION, PoolDoc(name, spec)) is not None:
        return True
    held = store.read(OVERLAPPING_RESERVATION, name)
    if held is None:  # released meanwhile: take it on the next round
        return False
    return (held.spec.get("containerid") == owner.container_id
            and held.spec.get("ifname", "") in ("", owner.ifname))


def unreserve(store: PoolStore, ip: IPAddress, owner: Owner, network_name: str) -> None:
    name = reservation_name(ip, network_name)
    held = store.read(OVERLAPPING_RESERVATION, name)
    if held is not None and held.spec.get("containerid") == owner.container_id:
        store.remove(OVERLAPPING_RESERVATION, name)


def allocate(store: PoolStore, r: PoolRange, name: str, owner: Owner, *,
             reservations: PoolStore | None = None, network_name: str = "",
             prefer: IPAddress | None = None) -> IPAddress:
    """An address of `r` for `owner` from pool `name` in `store`; with `reservations`
    (overlapping ranges on), each address is also reserved cluster-wide there. `prefer`
    (an address the owner held before, e.g. an IPAMClaim's) is taken when it is free,
    and refused when another owner holds it."""
    retry = Retry(f"allocating from pool {name} ({r.cidr})")
    state = _Attempts(reservations, owner, network_name)
    try:
        while True:
            start = time.monotonic()
            with store.transaction():  # SQLite: the read and the writes as one, no lost race
                outcome = _attempt(store, r, name, owner, prefer, state)
            if outcome is not None:
                state.reserved = None  # now the pool's
                return outcome
            retry.again(time.monotonic() - start)
    finally:
        state.drop_reservation()


@dataclass
class _Attempts:
    """What one allocation carries from attempt to attempt: addresses another owner
    reserved cluster-wide, and the one it reserved itself. A reservation outlives a lost
    pool write: the address stays ours to write on the next attempt, so the racing
    writers already hold different addresses and only the pool's version is contested."""

    reservations: PoolStore | None
    owner: Owner
    network_name: str
    refused: set[IPAddress] = field(default_factory=set)
    reserved: IPAddress | None = None

    def drop_reservation(self) -> None:
        if self.reserved is not None and self.reservations is not None:
            with contextlib.suppress(Exception):  # a leftover is the reconciler's
                unreserve(self.reservations, self.reserved, self.owner, self.network_name)
        self.reserved = None


def _attempt(store: PoolStore, r: PoolRange, name: str, owner: Owner,
             prefer: IPAddress | None, state: _Attempts) -> IPAddress | None:
    """One read-decide-write of allocate; None when another writer won the race."""
    while True:
        doc = store.read(IPPOOL, name)
        held = allocations(doc, r)
        mine = next((ip for ip, o in held.items() if o.same(owner)), None)
        if mine is not None:
            if state.reserved != mine:
                state.drop_reservation()
            state.reserved = None
            return mine
        if state.reserved is not None and state.reserved in held:
            state.drop_reservation()  # taken in the pool by a writer that reserves nothing
        if state.reserved is not None:
            ip: IPAddress | None = state.reserved
        elif prefer is not None and r.usable(prefer):
            if prefer in held or prefer in state.refused:
                raise CNIError(f"address {prefer} of pool {name} is held by another owner "
                               f"({held[prefer].podref if prefer in held else 'a reservation'})")
            ip = prefer
        else:
            ip = lowest_free(r, set(held) | state.refused)
        if ip is None:
            raise PoolExhausted(f"no free address left in range {r.cidr} "
                                f"({r.start}-{r.end}) of pool {name}")
        if state.reservations is not None and ip != state.reserved:
            if not _reserve(state.reservations, ip, owner, state.network_name):
                state.refused.add(ip)
                if len(state.refused) > MAX_REFUSED:
                    raise TryAgainLater(f"pool {name}: more than {MAX_REFUSED} free "
                                        "addresses are reserved by overlapping ranges; "
                                        "try again")
                continue
            state.reserved = ip
        held[ip] = owner
        if store.write(IPPOOL, _with(doc, name, r, held)) is not None:
            return ip
        return None


def release(store: PoolStore, r: PoolRange, name: str, gone: Callable[[Owner], bool], *,
            reservations: PoolStore | None = None, network_name: str = "",
            ) -> list[IPAddress]:
    """Free every allocation of pool `name` whose owner `gone` says is gone."""
    retry = Retry(f"releasing from pool {name} ({r.cidr})")
    while True:
        with store.transaction():
            doc = store.read(IPPOOL, name)
            held = allocations(doc, r)
            freed = {ip: o for ip, o in held.items() if gone(o)}
            if doc is None or not freed:
                return []
            keep = {ip: o for ip, o in held.items() if ip not in freed}
            written = store.write(IPPOOL, _with(doc, name, r, keep)) is not None
        if written:
            if reservations is not None:
                for ip, o in freed.items():
                    unreserve(reservations, ip, o, network_name)
            return sorted(freed, key=int)
        retry.again()


def owned(store: PoolStore, r: PoolRange, name: str, owner: Owner) -> list[IPAddress]:
    return [ip for ip, o in allocations(store.read(IPPOOL, name), r).items() if o.same(owner)]
