"""nftables through libnftables' JSON API: batches of JSON commands in, JSON listings out.

libnftables (Debian's python3-nftables binding, loaded with ctypes) does in-process what
`nft -j -f -` does, in about 0.1 ms instead of the 10-15 ms of starting `nft`: this is
on every attachment's critical path. A context's netlink socket belongs to the network
namespace it was opened in: the process keeps one for its own namespace (shared by
threads), and opens one per call anywhere else, closed before the call returns, so that
no socket of a long-lived process keeps a pod's namespace alive (`netns.at_home`).

Tables shared between attachments (e.g. `bridge nat`) are created and removed under
one file lock so a DEL removing an empty table cannot race an ADD filling it.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.nftables.main import NFTables

from multihome.cni.errors import CNIError
from multihome.net import netns

LOCK_PATH = os.environ.get("MULTIHOME_NFT_LOCK", "/run/multihome/nft.lock")

Obj = dict[str, Any]


class NftError(CNIError):
    """nftables refused a batch; `details` holds its own message."""


@dataclass
class _Namespace:
    """What this process has open in one network namespace.

    One libnftables context, used under a lock, and nfnetlink dump sockets. In the
    process's own namespace the context is kept and shared by its threads: the kernel
    serialises nftables transactions of a namespace anyway, and a context per thread
    kept a copy of the ruleset cache in each of the daemon's threads (megabytes apiece
    once a node holds hundreds of attachments). Its dump sockets there are each
    thread's own (`_thread_dumpers`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ctx: Any = None
    dumpers: dict[str, NFTables] = field(default_factory=dict)  # away from home only
    kept: bool = False

    def context(self) -> Any:
        if self.ctx is None:
            try:
                import nftables
            except ImportError as e:
                raise CNIError("the nftables Python binding is missing: install the Debian "
                               "package python3-nftables (make install does)") from e
            try:
                ctx = nftables.Nftables()
            except OSError as e:
                raise CNIError("cannot load libnftables: install the nftables package",
                               str(e)) from e
            ctx.set_json_output(True)
            ctx.set_handle_output(True)
            self.ctx = ctx
        return self.ctx

    def close(self) -> None:
        for nl in self.dumpers.values():
            nl.close()
        self.dumpers.clear()
        self.ctx = None


_home: _Namespace | None = None  # the process's own namespace's, once used
_home_guard = threading.Lock()
_home_dumpers = threading.local()


def _thread_dumpers() -> dict[str, NFTables]:
    """The calling thread's dump sockets in the process's own namespace, by family.

    Not shared: a pyroute2 socket keeps its asyncio loop per thread, and only the thread
    that opened it keeps that loop between calls. Shared by the daemon's DEL workers,
    every other worker made and dropped a loop (3 descriptors) per call, and pyroute2
    remembered each loop's id for good (~140 a burst of 200 pods, never freed)."""
    kept: dict[str, NFTables] | None = getattr(_home_dumpers, "by_family", None)
    if kept is None:
        kept = _home_dumpers.by_family = {}
    return kept


@contextmanager
def _here() -> Iterator[_Namespace]:
    """The calling thread's current namespace's handles, locked for the caller: the kept
    ones at home, elsewhere ones of this call alone, closed when it ends."""
    global _home
    if not netns.at_home():
        ns = _Namespace()
        try:
            yield ns
        finally:
            ns.close()
        return
    with _home_guard:
        if _home is None:
            _home = _Namespace(kept=True)
        ns = _home
    with ns.lock:
        yield ns


def close_thread_handles() -> None:
    """Close the calling thread's own dump sockets: for a thread about to end, whose
    sockets would otherwise wait for the garbage collector."""
    kept: dict[str, NFTables] = getattr(_home_dumpers, "by_family", None) or {}
    while kept:
        kept.popitem()[1].close()


def run(commands: list[Obj], *, what: str = "apply nftables rules") -> None:
    """Apply a batch atomically, like `nft -j -f -`: all commands or none."""
    if not commands:
        return
    with _here() as ns:
        rc, out, err = ns.context().json_cmd({"nftables": commands})
    if rc != 0:
        raise NftError(f"cannot {what}", (err or str(out)).strip())


def list_objects(*target: str) -> list[Obj]:
    """`nft -j list <target...>` as a list of objects (`{"table": …}`, `{"rule": …}` …).

    A missing table or chain gives an empty list.
    """
    with _here() as ns:
        rc, out, err = ns.context().cmd("list " + " ".join(target))
    if rc != 0:
        msg = (err or "").strip()
        if "No such file or directory" in msg or "does not exist" in msg:
            return []
        raise NftError(f"cannot list nftables {' '.join(target)}", msg)
    try:
        items = json.loads(out or "{}").get("nftables", [])
    except ValueError as e:
        raise NftError("nftables printed invalid JSON", str(e)) from e
    return [i for i in items if "metainfo" not in i]


_NFPROTO = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}


def table_names(family: str) -> list[str]:
    """Names of the tables of one family in the current namespace, by a netlink dump of
    tables alone: libnftables' `list tables` fetches and prints the whole ruleset first
    (about 1 s with 100 policy tables here), this costs 0.3 ms whatever the ruleset."""
    # The dump socket is kept open, not opened per call: closing an nfnetlink socket
    # makes nf_tables flush its pending destroy work, an RCU grace period (10-30 ms
    # right after a DEL removed chains) on the caller's clock.
    dumpers: dict[str, NFTables] = {}
    try:
        with _here() as ns:
            dumpers = _thread_dumpers() if ns.kept else ns.dumpers
            nl = dumpers.get(family)
            if nl is None:
                nl = dumpers[family] = NFTables(nfgen_family=_NFPROTO[family])
            return [str(t.get_attr("NFTA_TABLE_NAME")) for t in nl.get_tables()]
    except (NetlinkError, OSError) as e:
        failed = dumpers.pop(family, None)  # a socket that failed once is not trusted again
        if failed is not None:
            failed.close()
        raise NftError(f"cannot list the nftables tables of family {family}", str(e)) from e


def table_exists(family: str, name: str) -> bool:
    return any("table" in o for o in list_objects("table", family, name))


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o[kind] for o in objects if kind in o]


@contextmanager
def locked() -> Iterator[None]:
    """Serialise table create/delete across processes (flock on a file under /run)."""
    os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
