"""Shared fixtures: real network namespaces that are always removed, and a leak check."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

NETNS_DIR = Path("/var/run/netns")


def _root_or_skip() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")


def unique(prefix: str) -> str:
    """A short unique name (interface names must stay within 15 characters)."""
    return f"{prefix}{secrets.token_hex(3)}"


@dataclass
class Netns:
    name: str

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.name)

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace (for traffic: ping and friends)."""
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True,
                              text=True, check=check, timeout=timeout)


def _add_netns(name: str) -> Netns:
    subprocess.run(["ip", "netns", "add", name], check=True)
    ns = Netns(name)
    ns.run("ip", "link", "set", "lo", "up")
    return ns


def _del_netns(name: str) -> None:
    if (NETNS_DIR / name).exists():
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def netns_factory() -> Iterator[callable]:  # type: ignore[valid-type]
    _root_or_skip()
    made: list[str] = []

    def make(prefix: str = "mht") -> Netns:
        ns = _add_netns(unique(prefix))
        made.append(ns.name)
        return ns

    yield make
    for name in made:
        _del_netns(name)


@pytest.fixture
def netns(netns_factory: callable) -> Netns:  # type: ignore[valid-type]
    return netns_factory()  # type: ignore[no-any-return]


def host_links() -> set[str]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def nft_tables() -> set[str]:
    if not shutil.which("nft"):
        return set()
    out = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True)
    if out.returncode != 0:
        return set()
    items = json.loads(out.stdout).get("nftables", [])
    return {f"{i['table']['family']} {i['table']['name']}" for i in items if "table" in i}


def host_netns() -> set[str]:
    return set(os.listdir(NETNS_DIR)) if NETNS_DIR.exists() else set()


@pytest.fixture(autouse=True, scope="session")
def _no_leaks() -> Iterator[None]:
    """The whole run must leave no namespace, link or nft table behind."""
    if os.geteuid() != 0:
        yield
        return
    before = (host_netns(), host_links(), nft_tables())
    yield
    after = (host_netns(), host_links(), nft_tables())
    leaked = {kind: sorted(a - b) for kind, b, a in zip(("netns", "links", "nft tables"),
                                                          before, after, strict=True) if a - b}
    assert not leaked, f"test run leaked kernel state: {leaked}"
