"""net.* sysctls of the current thread's network namespace.

/proc/sys/net resolves against the namespace of the task that opens the file, so
callers wrap these in `netns.entered(...)` to act inside a container.
"""

from __future__ import annotations

from pathlib import Path

from multihome.cni.errors import CNIError, InvalidConfig

PROC_SYS = Path("/proc/sys")


def _path(key: str) -> Path:
    """`net.ipv4.ip_forward` or `net/ipv6/conf/eth0/accept_dad` → /proc/sys path.

    The slash form is needed when an interface name contains dots.
    """
    rel = key.strip("/") if "/" in key else key.replace(".", "/")
    if not rel.startswith("net/") or ".." in rel.split("/"):
        raise InvalidConfig(f"sysctl {key!r} is not under net.*")
    return PROC_SYS / rel


def read(key: str) -> str:
    try:
        return _path(key).read_text().strip()
    except OSError as e:
        raise CNIError(f"cannot read sysctl {key}", str(e)) from e


def write(key: str, value: str) -> None:
    try:
        _path(key).write_text(value)
    except OSError as e:
        raise CNIError(f"cannot set sysctl {key} to {value}", str(e)) from e


def write_best_effort(key: str, value: str) -> bool:
    """For settings the reference plugin also ignores failures of (e.g. no IPv6)."""
    try:
        write(key, value)
    except CNIError:
        return False
    return True


def iface_key(family: str, ifname: str, name: str) -> str:
    """`net/ipv6/conf/<ifname>/<name>` (slash form, safe with dotted names)."""
    return f"net/{family}/conf/{ifname}/{name}"
