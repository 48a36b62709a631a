"""Real network namespaces for tests, named with a random suffix so parallel runs do not
collide; the `netns_factory` fixture (tests/conftest.py) removes every one it made."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/var/run/netns")


def unique(prefix: str) -> str:
    """A short unique name (interface names must stay within 15 characters)."""
    return f"{prefix}{secrets.token_hex(3)}"


@dataclass
class Netns:
    name: str

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.name)

    def run(
        self, *argv: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace (for traffic: ping and friends)."""
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True,
                              text=True, check=check, timeout=timeout)


def add_netns(name: str) -> Netns:
    subprocess.run(["ip", "netns", "add", name], check=True)
    ns = Netns(name)
    ns.run("ip", "link", "set", "lo", "up")
    return ns


def del_netns(name: str) -> None:
    if (NETNS_DIR / name).exists():
        subprocess.run(["ip", "netns", "del", name], check=False)
