"""The installed plugin executables driven by plain CNI variables, as a container runtime does.

The seed NetworkAttachmentDefinition's config (design.md) goes verbatim to `cnv-bridge`,
once as it is (no IPAM: an L2-only attachment) and once with a host-local range added.
The plugin runs inside a namespace that plays the node, so `dev-bridge` and its nft table
never touch the real host; one test runs in the host namespace exactly as a runtime would.
"""

from __future__ import annotations

import json
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from multihome.cni.version import ALL_VERSIONS, at_least
from support import kstate
from support.cni_exec import run_cni
from support.netns import Netns, unique

pytestmark = pytest.mark.netns

SEED: dict[str, Any] = json.loads(
    '{"cniVersion": "0.3.1", "name": "bridge-dev", "type": "cnv-bridge",'
    ' "bridge": "dev-bridge", "macspoofchk": true, "vlan": 0}'
)



def seed_with_ipam(data_dir: Path, version: str = "0.3.1") -> dict[str, Any]:
    return {**SEED, "cniVersion": version, "ipam": {
        "type": "host-local", "dataDir": str(data_dir),
        "ranges": [[{"subnet": "10.210.0.0/24"}]]}}


def allocation_files(data_dir: Path, network: str = "bridge-dev") -> list[str]:
    d = data_dir / network
    if not d.exists():
        return []
    return sorted(p.name for p in d.iterdir()
                  if p.name != "lock" and not p.name.startswith("last_reserved_ip"))


@pytest.mark.parametrize("plugin", ["bridge", "cnv-bridge", "host-local", "static"])
def test_version_lists_every_spec_version(cni_bin_dir: Path, plugin: str) -> None:
    out = run_cni(cni_bin_dir / plugin, "VERSION", None)
    info = out.ok()
    assert info["cniVersion"] == "1.1.0"
    assert set(info["supportedVersions"]) >= {"0.3.1", "0.4.0", "1.0.0", "1.1.0"}
    assert out.stderr == ""


def test_seed_with_ipam_add_del(cni_bin_dir: Path, host_ns: Netns, netns: Netns,
                                tmp_path: Path) -> None:
    exe, cid = cni_bin_dir / "cnv-bridge", unique("seed")
    conf = seed_with_ipam(tmp_path)
    cni = partial(run_cni, exe, container_id=cid, netns=netns.path, ifname="net1",
                  cni_path=cni_bin_dir, host_ns=host_ns)
    result = cni("ADD", conf).ok()

    assert result["cniVersion"] == "0.3.1"
    names = [i["name"] for i in result["interfaces"]]
    assert names[0] == "dev-bridge" and names[2] == "net1"
    assert result["interfaces"][2]["sandbox"] == netns.path
    assert result["ips"] == [{"version": "4", "interface": 2, "address": "10.210.0.2/24",
                              "gateway": "10.210.0.1"}]

    veth = names[1]
    assert kstate.link(host_ns.name, veth)["master"] == "dev-bridge"
    assert kstate.addresses(netns.name, "net1") == ["10.210.0.2/24"]
    mac = kstate.link(netns.name, "net1")["address"]
    assert result["interfaces"][2]["mac"] == mac
    spoof = kstate.macspoof_state(host_ns.name, cid, "net1")
    assert spoof["chains"] == [f"cni-br-iface-{cid}-net1", f"cni-br-iface-{cid}-net1-mac"]
    assert set(spoof["comments"]) == {f"macspoofchk-{cid}-net1"}
    assert allocation_files(tmp_path) == ["10.210.0.2"]

    # CHECK needs cniVersion 0.4.0; with the seed's 0.3.1 it is refused with code 1.
    refused = cni("CHECK", {**conf, "prevResult": result})
    assert refused.returncode != 0 and refused.json["code"] == 1

    assert cni("DEL", conf).ok() is None
    assert kstate.link(host_ns.name, veth) is None
    assert kstate.link(netns.name, "net1") is None
    assert kstate.macspoof_state(host_ns.name, cid, "net1") == {"chains": [], "comments": []}
    assert allocation_files(tmp_path) == []
    # DEL is idempotent, also without the netns (the runtime may have removed it already).
    assert cni("DEL", conf).returncode == 0
    assert cni("DEL", conf, netns="").returncode == 0


def test_seed_verbatim_without_ipam(cni_bin_dir: Path, host_ns: Netns, netns: Netns) -> None:
    exe, cid = cni_bin_dir / "cnv-bridge", unique("l2")
    cni = partial(run_cni, exe, container_id=cid, netns=netns.path, ifname="net1",
                  cni_path=cni_bin_dir, host_ns=host_ns)
    result = cni("ADD", SEED).ok()
    try:
        assert [i["name"] for i in result["interfaces"]][::2] == ["dev-bridge", "net1"]
        assert not result.get("ips")
        assert kstate.addresses(netns.name, "net1") == []
        assert kstate.link(netns.name, "net1")["operstate"] in ("UP", "UNKNOWN")
        bridge = kstate.link(host_ns.name, "dev-bridge")
        assert bridge is not None and bridge["linkinfo"]["info_kind"] == "bridge"
        assert len(kstate.macspoof_state(host_ns.name, cid, "net1")["chains"]) == 2
    finally:
        assert cni("DEL", SEED).ok() is None
    assert kstate.ports_of(host_ns.name, "dev-bridge") == {}
    assert kstate.macspoof_state(host_ns.name, cid, "net1")["chains"] == []


@pytest.fixture
def host_bridge_nat_restored() -> Any:
    """Remove `bridge nat` afterwards if this test made it and left it with no rules.

    Neither plugin drops the shared table on DEL (another ADD may be using it at that
    moment), so a test that runs on the real host tidies it itself.
    """
    existed = "bridge nat" in kstate.nft_tables(None)
    yield
    if not existed and "bridge nat" in kstate.nft_tables(None) \
            and not kstate.nft_rules(None):
        subprocess.run(["nft", "delete", "table", "bridge", "nat"], check=False)


def test_seed_in_host_namespace_like_a_runtime(cni_bin_dir: Path, netns: Netns,
                                               tmp_path: Path,
                                               host_bridge_nat_restored: None) -> None:
    exe, cid = cni_bin_dir / "cnv-bridge", unique("rt")
    bridge = unique("mhbr")
    conf = {**seed_with_ipam(tmp_path), "bridge": bridge}
    cni = partial(run_cni, exe, container_id=cid, netns=netns.path, ifname="net1",
                  cni_path=cni_bin_dir)
    try:
        result = cni("ADD", conf).ok()
        assert result["interfaces"][0]["name"] == bridge
        assert kstate.addresses(netns.name, "net1") == ["10.210.0.2/24"]
        assert len(kstate.macspoof_state(None, cid, "net1")["chains"]) == 2
        assert cni("DEL", conf).ok() is None
        assert kstate.macspoof_state(None, cid, "net1") == {"chains": [], "comments": []}
        assert allocation_files(tmp_path) == []
    finally:
        cni("DEL", conf)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)


def _assert_cni_error(out: Any, code: int) -> None:
    assert out.returncode != 0
    assert "Traceback" not in out.stdout
    err = json.loads(out.stdout)
    assert err["code"] == code, err
    assert isinstance(err["msg"], str) and err["msg"]
    assert set(err) <= {"cniVersion", "code", "msg", "details"}


def test_bad_json_is_code_6(cni_bin_dir: Path, netns: Netns) -> None:
    out = run_cni(cni_bin_dir / "cnv-bridge", "ADD", b"{not json", container_id="c1",
                  netns=netns.path, ifname="net1")
    _assert_cni_error(out, 6)


@pytest.mark.parametrize("drop", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])
def test_missing_env_is_code_4(cni_bin_dir: Path, netns: Netns, drop: str) -> None:
    call: dict[str, Any] = {"container_id": "c1", "netns": netns.path, "ifname": "net1"}
    key = {"CNI_CONTAINERID": "container_id", "CNI_NETNS": "netns", "CNI_IFNAME": "ifname"}[drop]
    call[key] = ""
    out = run_cni(cni_bin_dir / "cnv-bridge", "ADD", SEED, **call)
    _assert_cni_error(out, 4)


def test_missing_command_is_code_4(cni_bin_dir: Path) -> None:
    out = run_cni(cni_bin_dir / "cnv-bridge", "", SEED, env={"CNI_COMMAND": ""})
    _assert_cni_error(out, 4)


@pytest.mark.parametrize("ifname", ["much-too-long-name", "a/b", "net 1", ".."])
def test_bad_ifname_is_code_4(cni_bin_dir: Path, netns: Netns, ifname: str) -> None:
    out = run_cni(cni_bin_dir / "cnv-bridge", "ADD", SEED, container_id="c1",
                  netns=netns.path, ifname=ifname)
    _assert_cni_error(out, 4)


@pytest.mark.parametrize("change", [
    {"type": None},
    {"name": "bad name!"},
    {"mtu": "big"},
    {"vlan": 5000},
    {"hairpinMode": True, "promiscMode": True},
    {"bridge": "this-bridge-name-is-too-long"},
    {"ipam": {"type": "host-local", "ranges": [[{"subnet": "not-a-subnet"}]]}},
], ids=["no-type", "bad-name", "mtu-string", "vlan-range", "hairpin+promisc",
        "long-bridge", "bad-subnet"])
def test_bad_config_is_code_7(cni_bin_dir: Path, host_ns: Netns, netns: Netns,
                              tmp_path: Path, change: dict[str, Any]) -> None:
    conf = {k: v for k, v in {**SEED, **change}.items() if v is not None}
    if "ipam" in conf:
        conf["ipam"]["dataDir"] = str(tmp_path)
    out = run_cni(cni_bin_dir / "cnv-bridge", "ADD", conf, container_id="c1",
                  netns=netns.path, ifname="net1", cni_path=cni_bin_dir, host_ns=host_ns)
    _assert_cni_error(out, 7)
    assert kstate.link(netns.name, "net1") is None


def test_unsupported_version_is_code_1(cni_bin_dir: Path, netns: Netns) -> None:
    out = run_cni(cni_bin_dir / "cnv-bridge", "ADD", {**SEED, "cniVersion": "9.0.0"},
                  container_id="c1", netns=netns.path, ifname="net1")
    _assert_cni_error(out, 1)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_every_version_round_trip(cni_bin_dir: Path, host_ns: Netns, netns: Netns,
                                  tmp_path: Path, version: str) -> None:
    exe, cid = cni_bin_dir / "cnv-bridge", unique("v")
    conf = seed_with_ipam(tmp_path, version)
    cni = partial(run_cni, exe, container_id=cid, netns=netns.path, ifname="net1",
                  cni_path=cni_bin_dir, host_ns=host_ns)
    try:
        result = cni("ADD", conf).ok()
        assert result["cniVersion"] == version
        if version in ("0.1.0", "0.2.0"):
            assert result["ip4"]["ip"] == "10.210.0.2/24"
        else:
            assert result["ips"][0]["address"] == "10.210.0.2/24"
        if at_least(version, "0.4.0"):  # CHECK came with 0.4.0
            assert cni("CHECK", {**conf, "prevResult": result}).ok() is None
            # CHECK notices when the attachment is gone.
            netns.run("ip", "link", "del", "net1")
            broken = cni("CHECK", {**conf, "prevResult": result})
            assert broken.returncode != 0 and isinstance(broken.json["code"], int)
    finally:
        assert cni("DEL", conf).returncode == 0
    assert allocation_files(tmp_path) == []
