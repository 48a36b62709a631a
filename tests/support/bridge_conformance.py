"""Comparing our bridge plugin with the Go reference: one side per implementation, a node
and a container namespace per run, and what may legitimately differ between two runs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.cni_exec import run_cni
from support.netns import Netns

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass
class Side:
    """One plugin implementation: its bridge executable and the CNI_PATH holding its IPAM."""

    name: str
    exe: Path
    cni_path: Path


@dataclass
class World:
    """The namespaces and data dir of one side of a comparison."""

    host: Netns
    container: Netns
    data_dir: Path
    cid: str

    def cni(self, side: Side, command: str, conf: dict[str, Any],
            cid: str | None = None, ifname: str = "eth0") -> Any:
        return run_cni(side.exe, command, conf, container_id=cid or self.cid,
                       netns=self.container.path, ifname=ifname, cni_path=side.cni_path,
                       host_ns=self.host)


def normalize_result(result: dict[str, Any], world: World) -> dict[str, Any]:
    out = dict(result)
    if out.get("dns") == {}:
        # Go prints an empty "dns" object; an absent one means the same.
        out.pop("dns")
    ifaces = []
    for i, iface in enumerate(out.get("interfaces", [])):
        iface = dict(iface)
        if "mac" in iface:
            assert MAC_RE.match(iface["mac"]), iface
            iface["mac"] = "<mac>"
        if i == 1:
            iface["name"] = "<veth>"
        if "sandbox" in iface:
            assert iface["sandbox"] == world.container.path
            iface["sandbox"] = "<netns>"
        ifaces.append(iface)
    out["interfaces"] = ifaces
    return out
