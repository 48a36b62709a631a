"""Where multihome keeps state on a node, and the one way it writes a file there.

At the bottom of the layers (standard library only): the lab, the node's checkpoint,
the CNI cache, plugin state files and the installed executables all use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import stat
import tempfile
import time

STATE_ENV = "MULTIHOME_STATE_DIR"
DEFAULT_STATE_DIR = "/var/lib/multihome/lab"
# the node daemon's own state (DHCP leases), kept across its restarts
DEFAULT_DAEMON_STATE_DIR = "/var/lib/multihome/daemon"


# Paths a network config (a NAD) may name: host-local's dataDir/resolvConf, tuning's and
# sriov's dataDir, sysfsRoot, kernelpath. The root daemon must never touch a path only a
# NAD's author chose; the node names others with $MULTIHOME_CONFIG_PATH_ROOTS
# (colon-separated, replacing these).
CONFIG_PATH_ROOTS_ENV = "MULTIHOME_CONFIG_PATH_ROOTS"
DEFAULT_CONFIG_PATH_ROOTS = ("/var/lib/cni", "/run/cni", "/var/lib/multihome",
                             "/run/multihome", "/etc/resolv.conf", "/run/systemd/resolve",
                             "/sys", "/lib/modules", "/usr/lib/modules")


def config_path_roots() -> tuple[str, ...]:
    return _resolved_roots(os.environ.get(CONFIG_PATH_ROOTS_ENV, ""), state_dir())


@functools.lru_cache(maxsize=8)
def _resolved_roots(raw: str, state: str) -> tuple[str, ...]:
    """The roots with their symlinks resolved, once per setting: resolving ten paths
    cost every ADD ~0.3 ms. Roots are the node's own directories: one re-pointed while
    the daemon runs keeps its old target until the setting changes (the node restarts
    the daemon after moving its state), and one newly made a symlink allows nothing
    more (paths under it resolve elsewhere)."""
    roots = [r for r in raw.split(":") if r.startswith("/")] if raw.strip() else \
        list(DEFAULT_CONFIG_PATH_ROOTS)
    # the lab's state dir is the node's own choice too ($MULTIHOME_STATE_DIR): its
    # networks keep their allocations there
    return tuple(os.path.realpath(r) for r in (*roots, state))


def config_path_allowed(path: str) -> bool:
    """Whether `path` (absolute), with its symlinks and `..` resolved, is one of the
    node's config path roots or lies under one."""
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root.rstrip("/") + "/")
               for root in config_path_roots())


def state_dir(path: str | None = None) -> str:
    """The state dir: the argument, else ``$MULTIHOME_STATE_DIR``, else the default."""
    return path or os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR


def write_file_atomic(dest: str | os.PathLike[str], data: str | bytes, mode: int, *,
                      durable: bool = False) -> None:
    """Replace `dest` by a rename, so a reader sees the old file or the new, never half.

    The temporary file has a unique name beside `dest` (two writers never share one) and
    is created 0600, so state is never readable by others even for a moment; `mode` is
    set before the rename. `durable`: fsync first, so a crash right after the rename
    still finds the new content (checkpoints, the CNI cache). Raises OSError.
    """
    dest = os.fspath(dest)
    directory = os.path.dirname(os.path.abspath(dest))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


STATE_FILE_LIMIT = 1 << 20  # no state or config file of ours is anywhere near this


def read_bounded(path: str | os.PathLike[str], limit: int = STATE_FILE_LIMIT) -> bytes:
    """A regular file's content, at most `limit` bytes; OSError otherwise.

    Opened non-blocking and checked before reading: a FIFO, a device or a directory put
    where a state file (or a config's resolvConf) is expected is an error at once, never
    a daemon blocked in open() or read() forever, and a huge file never fills memory."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(65536, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise OSError(errno.EFBIG, f"larger than {limit} bytes", os.fspath(path))
        return b"".join(chunks)
    finally:
        os.close(fd)


def flock_within(fd: int, seconds: float, poll: float = 0.1) -> bool:
    """Take an exclusive flock on `fd`, waiting at most `seconds`; False when another
    holder kept it that long (every wait has a bound). Closing `fd` releases it."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(poll)
