"""What a test run may leave on the host, read from the kernel and /proc (not from
multihome's own records): processes, mounts, links, namespaces, files."""

from __future__ import annotations

import os
from pathlib import Path

from pyroute2 import IPRoute


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain `text` (e.g. a state dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(f"{entry.name}: {cmd[:200]}")
    return found


def mounts_under(prefix: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix.rstrip("/") + "/")]


def link_names() -> set[str]:
    with IPRoute() as ipr:
        return {str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()}


def files_under(folder: str | Path) -> list[str]:
    root = Path(folder)
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
