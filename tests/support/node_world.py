"""A namespace playing the node, wired by a veth uplink to one playing the external LAN."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # "conftest" is tests/k8s/conftest.py when tests/k8s imports this module
    from support.netns import Netns

MULTIHOME = [sys.executable, "-c", "from multihome.cli.main import main; main()"]


@dataclass
class NodeWorld:
    node: Netns
    ext: Netns
    tmp: Path
    net: str  # "10.N" prefix of the /24 shared with the external host

    @property
    def host(self) -> str:
        return f"{self.net}.0.1"

    def env(self) -> dict[str, str]:
        return {**os.environ, "MULTIHOME_NODE_DIR": str(self.tmp / "node"),
                "MULTIHOME_RESOLV_CONF": str(self.tmp / "resolv.conf"),
                "MULTIHOME_STORE": str(self.tmp / "store.db"),
                "MULTIHOME_STATE_DIR": str(self.tmp / "lab")}

    def mh(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MULTIHOME, *args], capture_output=True, text=True,
                              env=self.env(), timeout=120)

    def node_cmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.mh("node", "--netns", self.node.name, *args)

    def write(self, name: str, data: Any) -> str:
        path = self.tmp / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return str(path)

    def pings_host(self) -> bool:
        return self.node.run("ping", "-c", "1", "-W", "1", self.host,
                             check=False).returncode == 0

    def bridge_policy(self, bridge: str, ports: list[str], *, probes: bool = True
                      ) -> dict[str, Any]:
        state: dict[str, Any] = {"interfaces": [{
            "name": bridge, "type": "linux-bridge", "state": "up",
            "bridge": {"options": {"stp": {"enabled": False}},
                       "port": [{"name": p} for p in ports]},
            "ipv4": {"enabled": True, "address": [{"ip": f"{self.net}.0.2",
                                                   "prefix-length": 24}]},
        }]}
        if probes:
            state["probes"] = {"ping": [self.host]}
        return state


def nncp(name: str, state: dict[str, Any], selector: dict[str, str] | None = None
         ) -> dict[str, Any]:
    """An NNCP manifest (shared with tests/k8s, which enact it through the API)."""
    spec: dict[str, Any] = {"desiredState": state}
    if selector is not None:
        spec["nodeSelector"] = selector
    return {"apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
            "metadata": {"name": name}, "spec": spec}


def make_world(netns_factory: Any, tmp_path: Path, octet: int) -> NodeWorld:
    node: Netns = netns_factory("mhn")
    ext: Netns = netns_factory("mhe")
    subprocess.run(["ip", "link", "add", "up0", "netns", node.name, "type", "veth", "peer",
                    "name", "eth0", "netns", ext.name], check=True)
    net = f"10.{octet}"
    ext.run("ip", "addr", "add", f"{net}.0.1/24", "dev", "eth0")
    ext.run("ip", "link", "set", "eth0", "up")
    node.run("ip", "link", "set", "up0", "up")
    return NodeWorld(node, ext, tmp_path, net)
