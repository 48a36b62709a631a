"""Shared fixtures: real network namespaces that are always removed, and a leak check.

Fixtures only: helpers live in tests/support/ (imported as `support.<module>`; this file,
a rootdir conftest, puts tests/ on sys.path) and no test imports a conftest.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from multihome import paths
from support.cni_exec import install_cni
from support.host_state import cni_state_files, host_netns, link_names, nft_tables
from support.netns import Netns, add_netns, del_netns, unique

# Timing belongs in benchmarks: hypothesis' per-example deadline (200 ms) failed property
# tests whenever other suites loaded this 2-core machine, for no defect of the code.
settings.register_profile("multihome", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("multihome")

# Tests give plugins dataDir/sysfsRoot/resolvConf paths in their tmp dirs: this node (the
# test machine) lets network configs name those besides the defaults. Set in the
# environment so that every daemon and plugin a test starts inherits it.
os.environ.setdefault(paths.CONFIG_PATH_ROOTS_ENV, ":".join(
    (*paths.DEFAULT_CONFIG_PATH_ROOTS, tempfile.gettempdir())))

# The cluster tier (tests/cluster) starts a real cluster and runs on its own after the
# kernel tier: `make test` runs it as `MH_CLUSTER_TIER=1 pytest tests/cluster`.
if os.environ.get("MH_CLUSTER_TIER") != "1":
    collect_ignore = ["cluster"]

NetnsFactory = Callable[..., Netns]


def _root_or_skip() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")


@pytest.fixture
def netns_factory() -> Iterator[NetnsFactory]:
    _root_or_skip()
    made: list[str] = []

    def make(prefix: str = "mht") -> Netns:
        ns = add_netns(unique(prefix))
        made.append(ns.name)
        return ns

    yield make
    for name in made:
        del_netns(name)


@pytest.fixture
def netns(netns_factory: NetnsFactory) -> Netns:
    return netns_factory()


@pytest.fixture
def node_ns(netns_factory: NetnsFactory, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Netns:
    """A namespace playing the node for node policies, its checkpoints and resolv.conf
    under tmp_path (the host tier and the Debian-kernel tier)."""
    monkeypatch.setenv("MULTIHOME_NODE_DIR", str(tmp_path / "node"))
    monkeypatch.setenv("MULTIHOME_RESOLV_CONF", str(tmp_path / "resolv.conf"))
    return netns_factory("mhnt")


@pytest.fixture(autouse=True, scope="session")
def _no_leaks() -> Iterator[None]:
    """The whole run must leave no namespace, link, nft table or /var/lib/cni file behind."""
    if os.geteuid() != 0 or os.environ.get("MH_LEAK_CHECK") == "0":
        # MH_LEAK_CHECK=0 only for developers running several suites at once on one host.
        yield
        return
    kinds = ("netns", "links", "nft tables", "files under /var/lib/cni")
    before = (host_netns(), link_names(), nft_tables(), cni_state_files())
    yield
    after = (host_netns(), link_names(), nft_tables(), cni_state_files())
    leaked = {kind: sorted(a - b) for kind, b, a in zip(kinds, before, after, strict=True)
              if a - b}
    assert not leaked, f"test run leaked host state: {leaked}"


@pytest.fixture(scope="session")
def cni_bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our plugin executables, every built-in type (Multus' names too), installed once."""
    bin_dir = tmp_path_factory.mktemp("cni-bin")
    install_cni(bin_dir, multus_names=True)
    for name in ("bridge", "cnv-bridge", "host-local", "static"):
        assert os.access(bin_dir / name, os.X_OK), f"install-cni did not write {name}"
    return bin_dir


@pytest.fixture
def host_ns(netns_factory: NetnsFactory) -> Netns:
    """A namespace that plays the node for plugins run with `run_cni(..., host_ns=...)`."""
    return netns_factory("mhh")
