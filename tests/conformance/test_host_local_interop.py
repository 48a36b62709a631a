"""host-local interoperability with the Go reference plugin (/usr/lib/cni/host-local).

Same config and the same dataDir: what one allocates the other releases, mixed
allocations never collide, results and files are identical. IPAM plugins touch no
namespace, so CNI_NETNS is any path string (the reference only requires it be set).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from multihome.cni import skel
from multihome.ipam import host_local

REF = Path("/usr/lib/cni/host-local")
VERSIONS = ["0.3.1", "0.4.0", "1.0.0"]  # the Go binary here stops at 1.0.0

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(not os.access(REF, os.X_OK),
                       reason=f"{REF} is absent: install containernetworking-plugins"),
]


def _env(command: str, cid: str, ifname: str, args: str) -> dict[str, str]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/var/run/netns/none",
           "CNI_IFNAME": ifname, "CNI_PATH": str(REF.parent)}
    if args:
        env["CNI_ARGS"] = args
    return env


def ref(command: str, conf: dict[str, Any], cid: str = "c1", ifname: str = "eth0",
        args: str = "") -> tuple[int, Any]:
    proc = subprocess.run([str(REF)], input=json.dumps(conf).encode(),
                          env=_env(command, cid, ifname, args), capture_output=True,
                          timeout=30, check=False)
    out = proc.stdout.decode()
    return proc.returncode, json.loads(out) if out.strip() else None


def mine(command: str, conf: dict[str, Any], cid: str = "c1", ifname: str = "eth0",
         args: str = "") -> tuple[int, Any]:
    rc, out = skel.dispatch(host_local, _env(command, cid, ifname, args),
                            json.dumps(conf).encode())
    return rc, json.loads(out) if out else None


PLUGINS = {"ref": ref, "mine": mine}


def make_conf(data_dir: Path, version: str, **ipam: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "interop", "type": "bridge",
            "ipam": {"type": "host-local", "dataDir": str(data_dir), **ipam}}


def disk(data_dir: Path) -> dict[str, bytes]:
    d = data_dir / "interop"
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())} if d.is_dir() else {}


def modes(data_dir: Path) -> dict[str, int]:
    d = data_dir / "interop"
    out = {p.name: stat.S_IMODE(p.stat().st_mode) for p in d.iterdir()}
    out["."] = stat.S_IMODE(d.stat().st_mode)
    return out


def ip_files(data_dir: Path) -> dict[str, bytes]:
    return {k: v for k, v in disk(data_dir).items()
            if k != "lock" and not k.startswith("last_reserved_ip.")}


DUAL = {"ranges": [[{"subnet": "10.20.0.0/28"}], [{"subnet": "fd00:20::/124"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "fd00:99::/64", "gw": "fd00:20::1"}]}


@pytest.mark.parametrize("version", VERSIONS)
def test_same_results_and_same_files(tmp_path: Path, version: str) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.0.0.53\nsearch example.org\noptions ndots:3\n")
    results: dict[str, list[Any]] = {}
    for name, plugin in PLUGINS.items():
        conf = make_conf(tmp_path / name, version, resolvConf=str(resolv), **DUAL)
        results[name] = [plugin("ADD", conf, f"c{i}", "eth0") for i in range(4)]
        results[name].append(plugin("DEL", conf, "c1", "eth0"))
        results[name].append(plugin("ADD", conf, "c9", "net1"))
    assert results["mine"] == results["ref"]
    assert all(rc == 0 for rc, _ in results["ref"]), results["ref"]
    assert disk(tmp_path / "mine") == disk(tmp_path / "ref")
    assert disk(tmp_path / "ref")["10.20.0.2"] == b"c0\r\neth0"
    assert modes(tmp_path / "mine") == modes(tmp_path / "ref")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("allocator", "releaser"), [("ref", "mine"), ("mine", "ref")])
def test_allocate_with_one_release_with_other(tmp_path: Path, version: str, allocator: str,
                                              releaser: str) -> None:
    conf = make_conf(tmp_path, version, **DUAL)
    for cid, ifname in (("a", "eth0"), ("a", "net1"), ("b", "eth0")):
        rc, res = PLUGINS[allocator]("ADD", conf, cid, ifname)
        assert rc == 0, res
    assert len(ip_files(tmp_path)) == 6
    if version != "0.3.1":  # CHECK exists from 0.4.0 on
        assert PLUGINS[releaser]("CHECK", conf, "a", "net1") == (0, None)
    assert PLUGINS[releaser]("DEL", conf, "a", "eth0") == (0, None)
    assert sorted(ip_files(tmp_path).values()) == [b"a\r\nnet1", b"a\r\nnet1",
                                                   b"b\r\neth0", b"b\r\neth0"]
    assert PLUGINS[releaser]("DEL", conf, "a", "net1") == (0, None)
    assert PLUGINS[releaser]("DEL", conf, "b", "eth0") == (0, None)
    assert PLUGINS[releaser]("DEL", conf, "b", "eth0") == (0, None)  # idempotent
    assert ip_files(tmp_path) == {}
    if version != "0.3.1":
        assert PLUGINS[allocator]("CHECK", conf, "a", "net1")[0] != 0


@pytest.mark.parametrize("version", VERSIONS)
def test_mixed_allocations_never_collide(tmp_path: Path, version: str) -> None:
    conf = make_conf(tmp_path, version, **DUAL)  # 13 usable v4 addresses (.2-.14)
    order = ["ref", "mine"] * 6 + ["mine"]
    seen: list[str] = []
    for i, who in enumerate(order):
        rc, res = PLUGINS[who]("ADD", conf, f"c{i}", "eth0")
        assert rc == 0, (who, res)
        seen += [ip["address"] for ip in res["ips"]]
        # Both follow last_reserved_ip: the sequence is what one plugin alone would give.
        assert res["ips"][0]["address"] == f"10.20.0.{i + 2}/28"
    assert len(seen) == len(set(seen)) == 26
    # Full: both refuse.
    assert ref("ADD", conf, "x")[0] != 0
    assert mine("ADD", conf, "x")[0] != 0
    # Free two with each, and re-fill across the plugins: round-robin wraps to the freed ones.
    for i, who in ((0, "mine"), (1, "ref"), (5, "ref"), (6, "mine")):
        assert PLUGINS[who]("DEL", conf, f"c{i}", "eth0") == (0, None)
    got = []
    for i, who in enumerate(["ref", "mine", "mine", "ref"]):
        rc, res = PLUGINS[who]("ADD", conf, f"n{i}", "eth0")
        assert rc == 0, (who, res)
        got.append(res["ips"][0]["address"])
    assert got == ["10.20.0.2/28", "10.20.0.3/28", "10.20.0.7/28", "10.20.0.8/28"]
    owners = ip_files(tmp_path)
    assert len(owners) == 26
    assert owners["10.20.0.7"] == b"n2\r\neth0"
    for i, who in enumerate(["mine", "ref"] * 7):
        if i < 13:
            PLUGINS[who]("DEL", conf, f"c{i}", "eth0")
    for i in range(4):
        PLUGINS["ref" if i % 2 else "mine"]("DEL", conf, f"n{i}", "eth0")
    assert ip_files(tmp_path) == {}


@pytest.mark.parametrize("version", VERSIONS)
def test_requested_ips_respect_each_other(tmp_path: Path, version: str) -> None:
    conf = make_conf(tmp_path, version, subnet="10.21.0.0/24")
    conf["args"] = {"cni": {"ips": ["10.21.0.50"]}}
    rc, res_ref = ref("ADD", conf, "a")
    assert rc == 0
    rc, err = mine("ADD", conf, "b")
    assert rc == 1 and "10.21.0.50" in err["msg"]
    conf["args"] = {"cni": {"ips": ["10.21.0.60"]}}
    rc, res_mine = mine("ADD", conf, "c", args="IgnoreUnknown=1")
    assert rc == 0
    assert res_mine["ips"][0]["address"] == "10.21.0.60/24"
    assert ref("ADD", conf, "d")[0] != 0
    # Both wrote last_reserved_ip.0 for the requested address; the next dynamic ADD of
    # either plugin continues after it.
    conf.pop("args")
    assert ref("ADD", conf, "e")[1]["ips"][0]["address"] == "10.21.0.61/24"
    assert mine("ADD", conf, "f")[1]["ips"][0]["address"] == "10.21.0.62/24"
    assert res_ref["ips"][0]["address"] == "10.21.0.50/24"


@pytest.mark.parametrize("version", VERSIONS)
def test_requested_ip_results_match(tmp_path: Path, version: str) -> None:
    outs = {}
    for name, plugin in PLUGINS.items():
        conf = make_conf(tmp_path / name, version, **DUAL)
        conf["runtimeConfig"] = {"ips": ["10.20.0.9/28", "fd00:20::9/124"]}
        outs[name] = plugin("ADD", conf, "a", "eth0", "IgnoreUnknown=1;IP=10.20.0.9")
        assert outs[name][0] == 0, outs[name]
    assert outs["mine"] == outs["ref"]
    assert disk(tmp_path / "mine") == disk(tmp_path / "ref")


def test_old_format_file_released_by_both(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, "1.0.0", subnet="10.22.0.0/24")
    d = tmp_path / "interop"
    d.mkdir()
    (d / "10.22.0.40").write_bytes(b"legacy1")
    (d / "10.22.0.41").write_bytes(b"legacy2")
    assert ref("CHECK", conf, "legacy2", "eth0") == (0, None)
    assert mine("CHECK", conf, "legacy1", "eth0") == (0, None)
    assert mine("DEL", conf, "legacy1", "eth0") == (0, None)
    assert ref("DEL", conf, "legacy2", "eth0") == (0, None)
    assert ip_files(tmp_path) == {}


def test_gc_frees_what_the_reference_leaked(tmp_path: Path) -> None:
    """A runtime crash between ADD and DEL leaves the reference's files behind; our GC
    (spec 1.1.0, which the Go binary here cannot do) frees them."""
    conf = make_conf(tmp_path, "1.0.0", subnet="10.23.0.0/24")
    for cid in ("alive", "crashed1", "crashed2"):
        assert ref("ADD", conf, cid)[0] == 0
    gc_conf = {**conf, "cniVersion": "1.1.0",
               "cni.dev/valid-attachments": [{"containerID": "alive", "ifname": "eth0"}]}
    assert mine("GC", gc_conf) == (0, None)
    assert ip_files(tmp_path) == {"10.23.0.2": b"alive\r\neth0"}
    assert ref("CHECK", conf, "alive", "eth0") == (0, None)
    assert ref("DEL", conf, "alive", "eth0") == (0, None)
    assert ip_files(tmp_path) == {}
