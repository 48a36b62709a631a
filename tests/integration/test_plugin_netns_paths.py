"""CNI_NETNS that is not a network namespace: the error is code 8 and names the path.

A regular file (what a crashed runtime leaves), a directory, another kind of namespace
(/proc/self/ns/mnt), a path that does not exist: whatever the plugin, the runtime reads
which path was wrong, never a file descriptor number or an internal error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.netns import Netns, unique
from support.plugin_harness import call, conf, static_ipam, veth

pytestmark = pytest.mark.netns


@pytest.fixture
def bad_paths(tmp_path: Path) -> dict[str, str]:
    regular = tmp_path / "netns-file"
    regular.write_text("")
    return {"a regular file": str(regular), "a directory": str(tmp_path),
            "a mount namespace": "/proc/self/ns/mnt", "a missing path": str(tmp_path / "gone")}


def configs(bridge: str, dev: str) -> list[dict[str, Any]]:
    ipam = static_ipam("10.85.0.2/24")
    return [conf("bridge", bridge=bridge, ipam=ipam), conf("macvlan", master=dev, ipam=ipam),
            conf("macvtap", master=dev), conf("host-device", device=dev),
            conf("tap", ipam=ipam), conf("tuning", prevResult={"cniVersion": "1.0.0"})]


def test_a_path_that_is_not_a_network_namespace_is_named(netns_factory: Any,
                                                         bad_paths: dict[str, str]) -> None:
    node: Netns = netns_factory("mhpn")
    ext: Netns = netns_factory("mhpe")
    bridge, dev = unique("pbr"), unique("pdv")
    veth(node, dev, ext, "ext0")
    for c in configs(bridge, dev):
        for what, path in bad_paths.items():
            err = call(node, "ADD", c, netns_path=path).error(8)
            assert path in err["msg"], (c["type"], what, err)


@pytest.mark.parametrize("key", ["dataDir", "resolvConf"])
def test_relative_paths_in_ipam_are_refused(netns_factory: Any, key: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative path would depend on the daemon's working directory."""
    monkeypatch.chdir(tmp_path)  # were it accepted, what it made stays in tmp_path
    node: Netns = netns_factory("mhpr")
    ipam = {"type": "host-local", "subnet": "10.86.0.0/24", "dataDir": str(tmp_path / "unused"),
            key: "relative/dir"}
    err = call(node, "ADD", conf("host-local", ipam=ipam), netns_path="/x").error(7)
    assert key in err["msg"] and "absolute" in err["msg"], err
