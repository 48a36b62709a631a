"""What a test run may leave on the host, read from the kernel and /proc (not from
multihome's own records): processes, mounts, links, namespaces, files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from pyroute2 import IPRoute

from support.netns import NETNS_DIR

CNI_STATE_DIR = Path("/var/lib/cni")


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


def nft_tables() -> set[str]:
    """The host's nft tables as "family name"."""
    if not shutil.which("nft"):
        return set()
    out = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True,
                         check=False, timeout=30)
    if out.returncode != 0:
        return set()
    items = json.loads(out.stdout).get("nftables", [])
    return {f"{i['table']['family']} {i['table']['name']}" for i in items if "table" in i}


def host_netns() -> set[str]:
    """The named network namespaces (`ip netns` names)."""
    return set(os.listdir(NETNS_DIR)) if NETNS_DIR.exists() else set()


def cni_state_files() -> set[str]:
    """Files under /var/lib/cni (result caches, IPAM allocations, multus records)."""
    return set(files_under(CNI_STATE_DIR))
