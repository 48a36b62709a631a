"""Running CNI executables exactly as a container runtime does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multihome import paths
from multihome.plugins.registry import BUILTIN, MULTUS_NAMES
from support.netns import Netns

GO_CNI_DIR = Path("/usr/lib/cni")


@dataclass
class CNIOutcome:
    """What one plugin execution printed and returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None

    def ok(self) -> Any:
        """The parsed result of a successful call; fails the test with the plugin's output."""
        assert self.returncode == 0, (
            f"plugin failed (exit {self.returncode}): stdout={self.stdout!r} stderr={self.stderr!r}"
        )
        return self.json


def node_env() -> dict[str, str]:
    """What the node sets for every plugin besides the CNI variables: the roots its
    network configs may name paths under (tests/conftest.py adds the tmp dir)."""
    roots = os.environ.get(paths.CONFIG_PATH_ROOTS_ENV)
    return {paths.CONFIG_PATH_ROOTS_ENV: roots} if roots else {}


def run_cni(
    exe: Path | str,
    command: str,
    conf: dict[str, Any] | bytes | None,
    *,
    container_id: str = "",
    netns: str = "",
    ifname: str = "eth0",
    cni_path: str | Path = "",
    cni_args: str = "",
    host_ns: Netns | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> CNIOutcome:
    """Exec one plugin with the CNI variables and `conf` on stdin.

    `host_ns` runs the plugin inside that namespace (`ip netns exec`), which then plays the
    node: its bridge, sysctls and nft tables stay out of the real host.
    """
    full_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "CNI_COMMAND": command, **node_env()}
    for key, value in (("CNI_CONTAINERID", container_id), ("CNI_NETNS", netns),
                       ("CNI_IFNAME", ifname if command != "VERSION" else ""),
                       ("CNI_PATH", str(cni_path)), ("CNI_ARGS", cni_args)):
        if value:
            full_env[key] = value
    full_env.update(env or {})
    stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode() if conf else b""
    argv = [str(exe)]
    if host_ns is not None:
        argv = ["ip", "netns", "exec", host_ns.name, *argv]
    proc = subprocess.run(argv, input=stdin, env=full_env, capture_output=True, timeout=timeout)
    return CNIOutcome(proc.returncode, proc.stdout.decode(errors="replace"),
                      proc.stderr.decode(errors="replace"))


def install_cni(bin_dir: Path, *, multus_names: bool = False) -> None:
    """`multihome install-cni --bin-dir DIR [--multus-names]` through the installed entry;
    with Multus' names, every built-in type (`whereabouts` too, opt-in like them)."""
    extra = ["--multus-names", "--types", ",".join(
        t for t in BUILTIN if t not in MULTUS_NAMES)] if multus_names else []
    subprocess.run([sys.executable, "-c", "from multihome.cli.main import main; main()",
                    "install-cni", "--bin-dir", str(bin_dir), *extra], check=True,
                   timeout=120)
