"""Network namespaces: open by path, enter on the current thread, netlink bound to one.

The rest of multihome reaches the kernel only through net/: it holds a :data:`Netlink`
handle (pyroute2's IPRoute, by name nowhere else) from :func:`netlink` or
:func:`iproute_in`, and a namespace from :func:`opened`, which closes its descriptor
however the body ends.

setns(2) changes the namespace of the calling thread only, so switching the thread,
opening a netlink socket and switching back gives a socket bound to the target
namespace for about 1.4 ms, where pyroute2's `IPRoute(netns=...)` forks a helper
process (about 17 ms, measured on the 2-core test VM).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeAlias, cast

from pyroute2 import IPRoute

from multihome.cni.errors import CNIError, InternalError, InvalidNetns

CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h: the CLONE_NEW* type of an ns fd
NETNS_RUN_DIR = "/var/run/netns"
THIS_NETNS = "/proc/thread-self/ns/net"  # the calling thread's own
NETLINK_ROUTE = 0

# A netlink handle bound to one network namespace; callers pass it to net/'s functions.
Netlink: TypeAlias = IPRoute
# An open network namespace (a descriptor on nsfs): what links are moved into.
NetnsFd: TypeAlias = int

_libc: Any = None


def _setns(fd: int) -> None:
    if _libc_handle().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


NSFS_MAGIC = 0x6E736673


def _libc_handle() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _is_nsfs(fd: int) -> bool:
    buf = ctypes.create_string_buffer(256)  # struct statfs; f_type is the first word
    if _libc_handle().fstatfs(fd, buf) != 0:
        return False
    return int.from_bytes(buf.raw[: ctypes.sizeof(ctypes.c_long)], "little") == NSFS_MAGIC


class NetnsGone(InvalidNetns):
    """The namespace path does not exist (any more): DEL treats this as done."""


def open_netns(path: str) -> int:
    """An O_RDONLY fd of the namespace at `path`; NetnsGone when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise NetnsGone(f"network namespace {path} does not exist", str(e)) from e
    except OSError as e:
        raise InvalidNetns(f"cannot open network namespace {path}", str(e)) from e
    # A path that is not an nsfs mount (an empty file left by a dead runtime, or a
    # namespace already unmounted) must read as gone, not as a kernel error later.
    if not _is_nsfs(fd):
        os.close(fd)
        raise NetnsGone(f"{path} is not a network namespace (is it still mounted?)")
    # Another kind of namespace (/proc/<pid>/ns/mnt) is nsfs too: setns would then fail
    # with EINVAL much later, in a message that knows only the fd.
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as e:
        os.close(fd)
        raise InvalidNetns(f"cannot tell what kind of namespace {path} is", str(e)) from e
    if kind != CLONE_NEWNET:
        os.close(fd)
        raise InvalidNetns(f"{path} is a namespace, but not a network namespace")
    return fd


@contextmanager
def opened(path: str) -> Iterator[NetnsFd]:
    """The namespace at `path`, open for the body (NetnsGone when it does not exist)."""
    fd = open_netns(path)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def entered(path_or_fd: str | int) -> Iterator[None]:
    """Run the body with the current thread in another network namespace."""
    fd = open_netns(path_or_fd) if isinstance(path_or_fd, str) else path_or_fd
    own_fd = isinstance(path_or_fd, str)
    orig = os.open(THIS_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _setns(fd)
        except OSError as e:
            where = path_or_fd if own_fd else f"the network namespace (fd {path_or_fd})"
            if e.errno == errno.EINVAL:
                raise NetnsGone(f"{where} is not a network namespace", str(e)) from e
            raise InvalidNetns(f"cannot enter {where}", str(e)) from e
        try:
            yield
        finally:
            try:
                _setns(orig)
            except OSError as e:  # the thread would keep working in the wrong netns
                raise InternalError("cannot return to the original network namespace",
                                    str(e)) from e
    finally:
        os.close(orig)
        if own_fd:
            os.close(fd)


class _KeptIPRoute(IPRoute):  # type: ignore[misc]
    """An IPRoute that a thread keeps for its own namespace: closing it keeps it open."""

    def close(self, code: int = errno.ECONNRESET) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass


def inode(path: str = THIS_NETNS) -> int:
    """The namespace's inode (the calling thread's by default): what tells two network
    namespaces apart while both live; 0 when /proc cannot say."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


# where the process started (the node, for the daemon); -1 never matches a namespace
_HOME_NETNS = inode("/proc/self/ns/net") or -1
_kept = threading.local()


def at_home() -> bool:
    """Whether the calling thread is in the namespace the process started in: the only
    one where a long-lived process may keep sockets open between calls. A socket kept in
    any other (a pod's) would keep that namespace, and the links in it, alive after its
    pod is gone."""
    return inode() == _HOME_NETNS


def keep_netlink() -> None:
    """Let this thread keep the IPRoute of the process's own namespace between calls.

    For the long-lived worker threads of a daemon (thread pool initializers call it):
    a thread that ends takes its kept socket to the garbage collector, not at once, so
    short-lived threads do not keep one. The handle is opened now, as the thread starts,
    not at its first use: which worker first touches netlink is the scheduler's choice,
    so opened lazily the daemon's RSS crept up burst after burst, ~0.1 MiB each time
    one more thread opened its own (measured, benchmark 6 of bench/bench_daemon.py)."""
    _kept.wanted = True
    if at_home() and getattr(_kept, "ipr", None) is None:
        with suppress(OSError):  # no socket now (descriptors exhausted): opened on use
            _kept.ipr = _KeptIPRoute(groups=0)


class _LazyNetlink:
    """A handle for another namespace (a pod's) whose IPRoute is built only when used.

    Most of what an attachment does in a pod's namespace (read links, add addresses,
    set the interface up) goes through rtnl_wire, which needs only a socket; building
    pyroute2's IPRoute cost more than all of that (~0.2 ms of Python, first in a profile
    of a burst of pods). The socket is opened here, in the namespace; the IPRoute, if a
    caller needs one (routes, rarer changes), is built in the same namespace later
    (its descriptor is kept until close). No multicast groups: nothing queues unread."""

    def __init__(self) -> None:
        self._ns = os.open(THIS_NETNS, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC
                                       | socket.SOCK_NONBLOCK, NETLINK_ROUTE)
            self._sock.bind((0, 0))
        except BaseException:
            os.close(self._ns)
            raise
        self._ipr: IPRoute | None = None

    def fileno(self) -> int:
        return self._sock.fileno()

    def _full(self) -> IPRoute:
        if self._ipr is None:
            if self._ns < 0:
                raise InternalError("netlink handle used after close")
            if os.fstat(self._ns).st_ino == inode():
                self._ipr = IPRoute(groups=0)  # still here: no setns (needs no privilege)
            else:
                with entered(self._ns):
                    self._ipr = IPRoute(groups=0)
        return self._ipr

    def __getattr__(self, name: str) -> Any:
        return getattr(self._full(), name)

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        self._sock.close()
        if self._ns >= 0:
            os.close(self._ns)
            self._ns = -1

    def __del__(self) -> None:  # a handle dropped unclosed still gives its descriptors back
        with suppress(Exception):
            self.close()

    def __enter__(self) -> _LazyNetlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def netlink() -> Netlink:
    """A netlink handle in the current thread's namespace (use it as a context manager).

    A worker thread that asked to (`keep_netlink`) keeps one for the namespace the
    process started in and hands it out again: opening an IPRoute and its first request
    cost ~0.35 ms of Python, paid twice per attachment otherwise. Anywhere else (a pod's
    namespace) it is a new one, closed by the caller (see `at_home`); its IPRoute is
    built only if a caller needs more than the socket (_LazyNetlink)."""
    if not at_home() or not getattr(_kept, "wanted", False):
        # typed as the IPRoute it stands for: every other attribute is the IPRoute's
        return cast(IPRoute, _LazyNetlink())
    kept: IPRoute | None = getattr(_kept, "ipr", None)
    if kept is None:
        kept = _kept.ipr = _KeptIPRoute(groups=0)
    return kept


def iproute_in(path_or_fd: str | int | None) -> Netlink:
    """An IPRoute whose socket lives in the given namespace (None: the current one).

    The caller closes it (use it as a context manager).
    """
    if path_or_fd is None:
        return netlink()
    with entered(path_or_fd):
        return netlink()


def exists(path: str) -> bool:
    try:
        os.close(open_netns(path))
    except CNIError:
        return False
    return True


def named_path(name: str) -> str:
    return name if "/" in name else os.path.join(NETNS_RUN_DIR, name)


def create_named(name: str) -> str:
    """Create `/var/run/netns/<name>` (like `ip netns add`) and return its path."""
    from pyroute2 import netns as pr_netns

    path = named_path(name)
    if os.path.exists(path):
        raise CNIError(f"network namespace {name} already exists")
    pr_netns.create(name)
    return path


def delete_named(name: str) -> None:
    """Remove a named namespace (like `ip netns del`); missing is not an error."""
    path = named_path(name)
    if not os.path.exists(path):
        return
    detach_mount(path)
    with suppress(FileNotFoundError):
        os.unlink(path)


def detach_mount(path: str) -> None:
    """umount2(MNT_DETACH): the mount goes now, its users keep it until they let go."""
    mnt_detach = 2
    _libc_handle().umount2(path.encode(), mnt_detach)
