"""Link deletions of one pod's delegates, coalesced into one kernel request per namespace.

Deleting a link makes the kernel wait for an RCU grace period while it holds the RTNL
lock, so deletions from threads running side by side still queue behind each other:
three veths of one pod cost ~30 ms deleted at once, ~19 ms in one request. The kernel
deletes every link of a namespace that carries a given group number in one batch
(`ip link delete group N`, one grace period for all); so each participant tags its link
with the batch's group, waits until every participant still running has tagged its own
(or a short bound passes), and one of them deletes the group.

A batch is opened by whoever runs the participants (the engine's side-by-side DEL) and
reaches them through a context variable; outside one, links are deleted one by one.
"""

from __future__ import annotations

import contextvars
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from multihome.net import link_reads

SO_NETNS_COOKIE = 71  # linux >= 5.14: the namespace of a socket, as a 64-bit cookie
# how long the first tagged link waits for the other participants: about one deletion,
# so a participant busy elsewhere (a slow IPAM release) costs the others at most that
GATHER_S = 0.03

_current: contextvars.ContextVar[DeleteBatch | None] = contextvars.ContextVar(
    "multihome_link_delete_batch", default=None)


@dataclass
class _Waiter:
    done: bool = False
    alone: bool = False  # the group request was refused: delete the link by itself


@dataclass
class DeleteBatch:
    """The deletions of `participants` threads; each calls `leave` when it is finished."""

    participants: int
    gather_s: float = GATHER_S
    group: int = field(default_factory=lambda: 0x10000 + secrets.randbelow(0x7FFE0000))
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _pending: dict[int, list[_Waiter]] = field(default_factory=dict)
    _first_at: float | None = None

    def leave(self) -> None:
        with self._cond:
            self.participants -= 1
            self._cond.notify_all()

    def delete(self, ipr: Any, key: dict[str, Any]) -> None:
        """Delete the link `key` names (ifname= or index=) with the others of its
        namespace. A NetlinkError is the kernel's refusal (ENODEV: the link is gone),
        for the caller to sort as it sorts a deletion of its own."""
        cookie = _netns_cookie(ipr)
        if cookie is None:
            ipr.link("del", **key)
            return
        ipr.link("set", group=self.group, **key)
        waiter = _Waiter()
        with self._cond:
            self._pending.setdefault(cookie, []).append(waiter)
            if self._first_at is None:
                self._first_at = time.monotonic()
            self._cond.notify_all()
            while not waiter.done:
                mine = self._pending.get(cookie) or []
                first = bool(mine) and mine[0] is waiter  # the one that will flush
                if first and self._due():
                    del self._pending[cookie]
                    self._cond.release()
                    try:
                        self._flush(ipr, mine)
                    finally:
                        self._cond.acquire()
                        self._cond.notify_all()
                    break
                # the others sleep until the flush wakes them (re-checking now and then)
                self._cond.wait(max(self._wait_left(), 0.001) if first else 1.0)
        if waiter.alone:
            ipr.link("del", **key)

    def _due(self) -> bool:
        """Every participant still running has tagged its link, or the bound passed."""
        waiting = sum(len(ws) for ws in self._pending.values())
        return waiting >= self.participants or self._wait_left() <= 0

    def _wait_left(self) -> float:
        if self._first_at is None:
            return self.gather_s
        return max(0.0, self._first_at + self.gather_s - time.monotonic())

    def _flush(self, ipr: Any, waiters: list[_Waiter]) -> None:
        """One request for the group, on the flushing participant's own socket. If the
        kernel refuses it (a link kind it cannot delete in a batch: then it deleted
        none), each participant deletes its link alone and gets its own answer."""
        try:
            ipr.link("del", index=0, group=self.group)
        except NetlinkError:
            for w in waiters:
                w.alone = True
        for w in waiters:
            w.done = True
        self._first_at = None  # a later deletion gathers anew


def _netns_cookie(ipr: Any) -> int | None:
    try:
        with link_reads.socket_of(ipr) as sock:
            raw = sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8)
    except (AttributeError, OSError, ValueError):
        return None
    return int.from_bytes(raw, "little")


def current() -> DeleteBatch | None:
    return _current.get()


@contextmanager
def coalesced(participants: int) -> Iterator[DeleteBatch | None]:
    """Open a batch for `participants` threads run in this context (copied into each);
    none for fewer than two, where there is nothing to coalesce."""
    if participants < 2:
        yield None
        return
    batch = DeleteBatch(participants)
    token = _current.set(batch)
    try:
        yield batch
    finally:
        _current.reset(token)
