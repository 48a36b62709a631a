"""The host-local allocation store, byte-compatible with the reference plugin's disk backend.

Layout under `<dataDir>/<network name>/`:
- `<ip>`: one file per allocated address holding `<containerID>\\r\\n<ifname>`
  (plugins before v0.7 wrote only `<containerID>`; both are read);
- `last_reserved_ip.<rangeSetIndex>`: the address most recently handed out from that set;
- `lock`: flock'ed exclusively around every operation, by both implementations.

A node can therefore switch between the Go plugin and this one without losing or
duplicating allocations.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from multihome.cni.errors import IOFailure
from multihome.paths import read_bounded

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
LAST_IP_PREFIX = "last_reserved_ip."
LINE_BREAK = "\r\n"  # what the reference writes between container ID and ifname
LOCK_NAME = "lock"
_FILE_MODE = 0o644
_LOCK_MODE = 0o750  # go-filemutex's mode; keeps `ls -l` identical whichever plugin made it


@dataclass(frozen=True)
class Allocation:
    ip: IPAddress
    container_id: str
    ifname: str  # "" for files of the old, ID-only format

    def owned_by(self, container_id: str, ifname: str) -> bool:
        if self.container_id != container_id.strip():
            return False
        return self.ifname in ("", ifname)


# an owner is a container ID and an interface name: anything past this is not ours
_OWNER_MAX = 4096


def _read_small(path: str) -> bytes | None:
    """A small state file's content; None when it is gone, or is not a regular file of
    at most _OWNER_MAX bytes (a FIFO planted in the directory must not hang the daemon:
    such a name is simply not an allocation)."""
    try:
        return read_bounded(path, _OWNER_MAX)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.EISDIR, errno.EINVAL, errno.EFBIG):
            return None
        raise


def _parse_owner(text: str) -> tuple[str, str]:
    content = text.strip()
    cid, _, ifname = content.partition("\n")
    return cid.strip(), ifname.strip()


class Store:
    """One network's directory. Use `with store.locked():` around every operation."""

    def __init__(self, data_dir: str, network: str, *, create: bool = True) -> None:
        self.dir = os.path.join(data_dir or DEFAULT_DATA_DIR, network)
        if create:
            try:
                os.makedirs(self.dir, mode=0o755, exist_ok=True)
            except OSError as e:
                raise IOFailure(f"cannot create the IPAM data directory {self.dir}",
                                str(e)) from e

    @property
    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    @contextmanager
    def locked(self) -> Iterator[Store]:
        path = os.path.join(self.dir, LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK,
                         _LOCK_MODE)
        except OSError as e:
            raise IOFailure(f"cannot open the IPAM lock file {path}", str(e)) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self
        finally:
            os.close(fd)  # closing the descriptor drops the flock

    # -- reading ------------------------------------------------------------
    def allocations(self) -> list[Allocation]:
        """Every address file; names that are not IP addresses are not allocations.

        Every ADD and DEL reads them all (as the reference's DEL does), so this is the
        IPAM's cost per pod on a busy node: plain descriptors and bytes, no text layer."""
        out: list[Allocation] = []
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return out
        except OSError as e:
            raise IOFailure(f"cannot list the IPAM data directory {self.dir}", str(e)) from e
        for name in sorted(names):
            try:
                ip = ipaddress.ip_address(name)
            except ValueError:
                continue
            try:
                raw = _read_small(os.path.join(self.dir, name))
            except OSError as e:
                raise IOFailure(f"cannot read allocation file {name} in {self.dir}",
                                str(e)) from e
            if raw is None:
                continue
            cid, ifname = _parse_owner(raw.decode("utf-8", errors="replace"))
            out.append(Allocation(ip, cid, ifname))
        return out

    def owned(self, container_id: str, ifname: str) -> list[Allocation]:
        """Allocations of (container, ifname); ID-only files count for any ifname."""
        return [a for a in self.allocations() if a.owned_by(container_id, ifname)]

    def last_reserved(self, range_set_index: int) -> IPAddress | None:
        path = os.path.join(self.dir, f"{LAST_IP_PREFIX}{range_set_index}")
        try:
            raw = _read_small(path)
            return ipaddress.ip_address(raw.decode("utf-8", errors="replace").strip()) \
                if raw is not None else None
        except (OSError, ValueError):
            # A missing or garbled file only costs the round-robin position.
            return None

    # -- writing ------------------------------------------------------------
    def reserve(self, container_id: str, ifname: str, ip: IPAddress,
                range_set_index: int) -> bool:
        """Claim `ip`; False if another owner holds it."""
        path = os.path.join(self.dir, str(ip))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
        except FileExistsError:
            return False
        except OSError as e:
            raise IOFailure(f"cannot create allocation file {path}", str(e)) from e
        try:
            os.write(fd, f"{container_id.strip()}{LINE_BREAK}{ifname}".encode())
        except OSError as e:
            os.close(fd)
            os.unlink(path)
            raise IOFailure(f"cannot write allocation file {path}", str(e)) from e
        os.close(fd)
        # the round-robin position: best effort (a lost one only moves where the next
        # search starts), and never an error once the address is ours; non-blocking, so
        # a FIFO planted under this name cannot hang the daemon
        last = os.path.join(self.dir, f"{LAST_IP_PREFIX}{range_set_index}")
        with contextlib.suppress(OSError):
            fd = os.open(last, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
                         | os.O_NONBLOCK, _FILE_MODE)
            try:
                os.write(fd, str(ip).encode())
            finally:
                os.close(fd)
        return True

    def release(self, allocation: Allocation) -> bool:
        try:
            os.unlink(os.path.join(self.dir, str(allocation.ip)))
        except FileNotFoundError:
            return False
        except OSError as e:
            if e.errno == errno.ENOENT:
                return False
            raise IOFailure(f"cannot remove allocation file for {allocation.ip} in {self.dir}",
                            str(e)) from e
        return True

    def release_owner(self, container_id: str, ifname: str) -> list[IPAddress]:
        """Free what (container, ifname) holds; like the reference, old ID-only files are
        released only when no file of the new format matched."""
        allocs = self.allocations()
        cid = container_id.strip()
        exact = [a for a in allocs if a.container_id == cid and a.ifname == ifname]
        chosen = exact or [a for a in allocs if a.container_id == cid and a.ifname == ""]
        return [a.ip for a in chosen if self.release(a)]
