"""A private lab driven through the `multihome` command as a user types it: its own state
dir and store under the test's tmp dir, its own bridges and external namespace."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from support.netns import unique

MULTIHOME = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "multihome")


@dataclass
class CLILab:
    tmp: Path
    dev_bridge: str
    external: str
    cluster_bridge: str

    @property
    def state(self) -> Path:
        return self.tmp / "state"

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "MULTIHOME_STATE_DIR": str(self.state), **extra}
        env.pop("MULTIHOME_STORE", None)
        return env

    def mh(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([MULTIHOME, "--store", str(self.tmp / "s.db"), *args],
                              capture_output=True, text=True, env=self.env(**env),
                              timeout=240)

    def ok(self, *args: str, **env: str) -> str:
        proc = self.mh(*args, **env)
        assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    def nad_file(self, name: str, config: dict[str, object]) -> str:
        path = self.tmp / f"{name}.yml"
        path.write_text(
            "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
            f"metadata:\n  name: {name}\nspec:\n  config: '{json.dumps(config)}'\n")
        return str(path)


LabT = TypeVar("LabT", bound=CLILab)


def new_lab(cls: type[LabT], tmp: Path, prefix: str) -> LabT:
    """Names only (`prefix` + d|x|k + 6 hex digits); nothing is created yet."""
    return cls(tmp, unique(f"{prefix}d"), unique(f"{prefix}x"), unique(f"{prefix}k"))


def lab_up(lab: CLILab, external_address: str, cluster_subnet: str, *extra: str) -> str:
    return lab.ok("lab", "up", "--dev-bridge", lab.dev_bridge, "--external-netns",
                  lab.external, "--external-address", external_address, "--cluster-bridge",
                  lab.cluster_bridge, "--cluster-subnet", cluster_subnet, *extra)


def lab_down(lab: CLILab) -> None:
    """`lab down`, then whatever a failed test could have left of the world."""
    lab.mh("lab", "down")
    for link in (lab.dev_bridge, lab.cluster_bridge, f"{lab.dev_bridge}-up"):
        subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "del", lab.external], capture_output=True, check=False)
