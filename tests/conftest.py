"""Shared fixtures: real network namespaces that are always removed, and a leak check."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

NETNS_DIR = Path("/var/run/netns")

# The cluster tier (tests/cluster) starts a real cluster and runs on its own after the
# kernel tier: `make test` runs it as `MH_CLUSTER_TIER=1 pytest tests/cluster`.
if os.environ.get("MH_CLUSTER_TIER") != "1":
    collect_ignore = ["cluster"]


_ROOT_CONFTEST = sys.modules[__name__]


def pytest_plugin_registered(plugin: object) -> None:
    # pytest imports every conftest.py outside a package as module "conftest", so a
    # folder's own conftest replaces this one in sys.modules; put this one back, since
    # support modules everywhere do `from conftest import unique, Netns, run_cni`.
    if plugin is not _ROOT_CONFTEST and getattr(plugin, "__name__", "") == "conftest":
        sys.modules["conftest"] = _ROOT_CONFTEST


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

    def run(
        self, *argv: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
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
    if os.geteuid() != 0 or os.environ.get("MH_LEAK_CHECK") == "0":
        # MH_LEAK_CHECK=0 only for developers running several suites at once on one host.
        yield
        return
    before = (host_netns(), host_links(), nft_tables())
    yield
    after = (host_netns(), host_links(), nft_tables())
    leaked = {kind: sorted(a - b) for kind, b, a in zip(("netns", "links", "nft tables"),
                                                          before, after, strict=True) if a - b}
    assert not leaked, f"test run leaked kernel state: {leaked}"


# --- Running CNI executables exactly as a container runtime does -----------------------

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
                "CNI_COMMAND": command}
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


def install_cni(bin_dir: Path) -> None:
    """`multihome install-cni --bin-dir DIR` through the installed console entry."""
    subprocess.run([sys.executable, "-c", "from multihome.cli.main import main; main()",
                    "install-cni", "--bin-dir", str(bin_dir)], check=True, timeout=120)


@pytest.fixture(scope="session")
def cni_bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our plugin executables (bridge, cnv-bridge, host-local, static), installed once."""
    bin_dir = tmp_path_factory.mktemp("cni-bin")
    install_cni(bin_dir)
    for name in ("bridge", "cnv-bridge", "host-local", "static"):
        assert os.access(bin_dir / name, os.X_OK), f"install-cni did not write {name}"
    return bin_dir


@pytest.fixture
def host_ns(netns_factory: Any) -> Netns:
    """A namespace that plays the node for plugins run with `run_cni(..., host_ns=...)`."""
    ns: Netns = netns_factory("mhh")
    return ns
