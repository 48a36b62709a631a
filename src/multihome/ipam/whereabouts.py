"""Cluster-wide IPAM, type `whereabouts` (also `multihome-ipam`): a NAD written for
whereabouts works unchanged, and its pools are whereabouts' own objects.

Where the pools live is injected by whoever composes the call: the engine binds a
:class:`PoolStore` over its store (the lab's SQLite file, or the Kubernetes API in a
cluster) for the delegates it runs; the daemon sets its store for the plugin calls it
serves directly (:func:`use_store`); a plugin run on its own uses the node's SQLite store
(``$MULTIHOME_STORE``). Nothing in the NAD chooses it.

One address per range (`range` and each `ipRanges` entry); DEL releases what the
(containerID, ifname) holds; GC releases every allocation of the network's pools whose
attachment is not in `cni.dev/valid-attachments`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from multihome.cni import version as ver
from multihome.cni.errors import CNIError, InvalidConfig, NotAvailable, TryAgainLater
from multihome.cni.result import IPConfig, Result
from multihome.cni.skel import Call
from multihome.cni.types import CmdArgs
from multihome.ipam import claims, pools, slices
from multihome.ipam import config as cfgmod
from multihome.ipam.ranges import IPAddress
from multihome.ipam.whereabouts_config import PoolRange, WhereaboutsConfig, load
from multihome.store import InvalidObject, Store, StoreError, store_path
from multihome.store.objects import IPPOOL
from multihome.store.pools import ObjectPools, PoolStore, pool_namespace
from multihome.store.sqlite import open_sqlite

SUPPORTED_VERSIONS: tuple[str, ...] = ver.ALL_VERSIONS
NODE_ENV = "NODE_NAME"
_T = TypeVar("_T")

log = logging.getLogger(__name__)

_BOUND: contextvars.ContextVar[PoolStore | None] = contextvars.ContextVar(
    "multihome_pool_store", default=None)
_NODE: contextvars.ContextVar[str] = contextvars.ContextVar("multihome_pool_node", default="")
_LOCAL: contextvars.ContextVar[str] = contextvars.ContextVar("multihome_pool_local",
                                                             default="")


@contextlib.contextmanager
def bound(store: PoolStore, node: str = "", local_path: str = "") -> Iterator[PoolStore]:
    """Calls made inside (in this context, and in delegate threads that copy it) keep
    their pools in `store`; `node` names the node for node slices (default: $NODE_NAME,
    else the host name); `local_path`, a SQLite file of the node's own, holds the
    allocations inside the node's slices (default: `store` too)."""
    tokens = _BOUND.set(store), _NODE.set(node), _LOCAL.set(local_path)
    try:
        yield store
    finally:
        _BOUND.reset(tokens[0])
        _NODE.reset(tokens[1])
        _LOCAL.reset(tokens[2])


@contextlib.contextmanager
def _sqlite_pools(path: str) -> Iterator[PoolStore]:
    try:
        sqlite = open_sqlite(path)
    except StoreError as e:
        raise NotAvailable("the cluster-wide IPAM's store cannot be opened", str(e)) from e
    try:
        yield ObjectPools(sqlite, pool_namespace())
    finally:
        sqlite.close()


@dataclass
class _ProcessDefault:
    """What a long-lived process (the daemon) set for calls nobody bound: a plugin
    served directly, not through the engine (a runtime's conflist, a Go delegate that
    execs the `whereabouts` executable)."""

    open_store: Callable[[], Store] | None = None
    local_path: str = ""


_DEFAULT = _ProcessDefault()


def use_store(open_store: Callable[[], Store] | None, local_path: str = "") -> None:
    """Unbound calls keep their pools in the store `open_store` opens (one per call,
    closed after it), their slice allocations in `local_path`; None: the node's SQLite
    store ($MULTIHOME_STORE)."""
    _DEFAULT.open_store, _DEFAULT.local_path = open_store, local_path


class _NoPools(Exception):
    """Teardown with no store to tear down from: the node's default file does not exist."""


@contextlib.contextmanager
def _pool_store(create: bool = True) -> Iterator[PoolStore]:
    """The pools of this call; with `create` False (DEL, CHECK, GC, STATUS), a default
    store file that does not exist is not made: _NoPools."""
    store = _BOUND.get()
    if store is not None:
        yield store
        return
    if _DEFAULT.open_store is not None:
        try:
            opened = _DEFAULT.open_store()
        except (StoreError, OSError) as e:
            raise NotAvailable("the cluster-wide IPAM's store cannot be opened",
                               str(e)) from e
        try:
            yield ObjectPools(opened, pool_namespace())
        finally:
            opened.close()
        return
    path = store_path(None)
    if not create and not os.path.exists(path):
        raise _NoPools(path)
    with _sqlite_pools(path) as default:
        yield default


@dataclass(frozen=True)
class _Pool:
    """Where one range's allocations go: the pool, its store, and where its addresses
    are reserved cluster-wide (None with overlapping ranges off)."""

    range: PoolRange
    name: str
    store: PoolStore
    reservations: PoolStore | None


def node_name() -> str:
    return _NODE.get() or os.environ.get(NODE_ENV) or socket.gethostname()


def owner_of(cmd: CmdArgs) -> pools.Owner:
    ns, name = cmd.arg("K8S_POD_NAMESPACE"), cmd.arg("K8S_POD_NAME")
    return pools.Owner(cmd.container_id.strip(), cmd.ifname,
                       f"{ns}/{name}" if ns and name else "")


@contextlib.contextmanager
def _pools_of(cfg: WhereaboutsConfig, *,
              take_slice: bool) -> Iterator[tuple[PoolStore, list[_Pool]]]:
    """The cluster store, and the pools of each configured range; with node slices, the
    node's slice, whose allocations live in the node's own store when it has one: only
    this node allocates from its slice, so its pool needs no cluster-wide write per pod."""
    with _pool_store(create=take_slice) as store:
        reservations = store if cfg.overlapping else None
        if cfg.node_slice_prefix is None:
            yield store, [_Pool(r, pools.pool_name(r.cidr, cfg.network_name), store,
                                reservations) for r in cfg.ranges]
            return
        node = node_name()
        r = slices.node_range(store, cfg, node, take=take_slice)
        name = pools.pool_name(r.cidr, cfg.network_name, node) if r else ""
        local = _LOCAL.get() or (_DEFAULT.local_path if _BOUND.get() is None else "")
        if r is None:
            yield store, []
        elif local:
            with _sqlite_pools(local) as local_store:
                yield store, [_Pool(r, name, local_store, reservations)]
        else:
            yield store, [_Pool(r, name, store, reservations)]


def _store_errors(fn: Callable[[Call], _T]) -> Callable[[Call], _T]:
    """Store failures as CNI errors: a pool name the store refuses is the config's
    (code 7), a store that cannot be used is "try again later" (code 11)."""

    @functools.wraps(fn)
    def entry(call: Call) -> _T:
        try:
            return fn(call)
        except _NoPools as e:
            raise NotAvailable(f"the cluster-wide IPAM has no pools: {e} does not exist"
                               ) from e
        except InvalidObject as e:
            raise InvalidConfig(f"{e}: the pool's name comes from the range; set "
                                "'network_name' (it prefixes the name)") from e
        except (StoreError, OSError) as e:
            raise TryAgainLater("the cluster-wide IPAM's pools cannot be used", str(e)) from e

    return entry


@contextlib.contextmanager
def _teardown_pools(cfg: WhereaboutsConfig) -> Iterator[list[_Pool]]:
    """DEL's and GC's pools: none when there is no store to release from (the node's
    default file never made), rather than an empty store made now."""
    try:
        with _pools_of(cfg, take_slice=False) as (_, targets):
            yield targets
    except _NoPools as e:
        log.info("whereabouts: no pools at %s, nothing to release", e)
        yield []


def _ipconfig(ip: IPAddress, r: PoolRange, cfg: WhereaboutsConfig) -> IPConfig:
    prefix = cfg.ranges[0].subnet.prefixlen if cfg.node_slice_prefix is not None \
        else r.subnet.prefixlen  # a slice is for allocation; the pod sees the whole range
    return IPConfig(address=ipaddress.ip_interface(f"{ip}/{prefix}"), gateway=r.gateway)


def _claimed_owner(call: Call) -> tuple[claims.ClaimRef | None, pools.Owner]:
    """The attachment's IPAMClaim (if its selection names one) and who owns its
    addresses: the claim when there is one, else the pod's attachment."""
    ref = claims.claim_ref(call)
    owner = owner_of(call.cmd)
    return ref, owner if ref is None else claims.claim_owner(ref, owner.podref)


@_store_errors
def add(call: Call) -> Result:
    cfg = load(call.conf)
    ref, owner = _claimed_owner(call)
    ips: list[IPConfig] = []
    with _pools_of(cfg, take_slice=True) as (store, targets):
        recorded = claims.recorded_ips(claims.read_claim(store, ref)) if ref else []
        taken: list[_Pool] = []
        try:
            for p in targets:
                prefer = next((ip for ip in recorded if p.range.usable(ip)), None)
                ip = pools.allocate(p.store, p.range, p.name, owner,
                                    reservations=p.reservations,
                                    network_name=cfg.network_name, prefer=prefer)
                taken.append(p)
                ips.append(_ipconfig(ip, p.range, cfg))
            if ref is not None:
                claims.record(store, ref, ips, call.cmd.arg("K8S_POD_NAME") or "")
        except BaseException:
            # undo only this attachment's addresses (a claim keeps its own)
            for p in taken if ref is None else []:
                with contextlib.suppress(Exception):
                    _release(p, owner.same, cfg)
            raise
    return Result(cni_version=cfg.cni_version, ips=ips, routes=cfg.routes, dns=cfg.dns)


def _release(p: _Pool, gone: Callable[[pools.Owner], bool],
             cfg: WhereaboutsConfig) -> list[IPAddress]:
    return pools.release(p.store, p.range, p.name, gone, reservations=p.reservations,
                         network_name=cfg.network_name)


@_store_errors
def delete(call: Call) -> None:
    try:
        cfg = load(call.conf)
    except InvalidConfig as e:
        # nothing to find the pools by: DEL still succeeds, GC and the reconciler free it
        log.warning("whereabouts DEL of %s: config unusable (%s); nothing released",
                    call.cmd.container_id, e.msg)
        return
    if claims.claim_ref(call) is not None:
        return  # the address is the claim's: it outlives this pod (freed with the claim)
    owner = owner_of(call.cmd)
    with _teardown_pools(cfg) as targets:
        for p in targets:
            _release(p, owner.same, cfg)


@_store_errors
def check(call: Call) -> None:
    cfg = load(call.conf)
    _, owner = _claimed_owner(call)
    held: set[IPAddress] = set()
    with _pools_of(cfg, take_slice=False) as (_, targets):
        for p in targets:
            mine = pools.owned(p.store, p.range, p.name, owner)
            if not mine:
                raise CNIError(f"whereabouts: no address of {p.range.cidr} is allocated to "
                               f"container {owner.container_id} interface {owner.ifname}")
            held.update(mine)
    prev = call.conf.prev_result
    for ipc in prev.ips if prev else []:
        ip = ipc.address.ip
        if any(ip in r.subnet for r in cfg.ranges) and ip not in held:
            raise CNIError(f"whereabouts: address {ip} of the previous result is not "
                           f"allocated to container {owner.container_id}")


@_store_errors
def gc(call: Call) -> None:
    valid = cfgmod.valid_attachments(call.conf)
    if valid is None:
        return  # without the list, leaks cannot be told from live attachments
    cfg = load(call.conf)
    ids = {cid for cid, _ in valid}

    def gone(o: pools.Owner) -> bool:
        if claims.is_claim_owned(o):
            return False  # bound to a claim, not to an attachment
        return (o.container_id, o.ifname) not in valid if o.ifname else o.container_id \
            not in ids

    with _teardown_pools(cfg) as targets:
        for p in targets:
            _release(p, gone, cfg)


def status(call: Call) -> None:
    cfg = load(call.conf)
    try:
        with _pool_store(create=False) as store:
            store.read(IPPOOL, pools.pool_name(cfg.ranges[0].cidr, cfg.network_name))
    except (StoreError, OSError, TryAgainLater, _NoPools) as e:
        raise NotAvailable("the cluster-wide IPAM's pools cannot be read", str(e)) from e
