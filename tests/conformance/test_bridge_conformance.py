"""The same configs through the Go reference bridge (v1.1.1, /usr/lib/cni) and through ours.

Each side gets its own pair of namespaces: one plays the node (the plugin runs inside it,
so its bridge, sysctls and nft tables are private and vanish with it), one the container.
Because the sides never share a namespace they use the same bridge name and subnet, and
everything they print or leave in the kernel can be compared as is, apart from random MACs,
veth names, container IDs and namespace paths.

The Go plugin here knows cniVersion up to 1.0.0 and these keys: bridge, isGateway,
isDefaultGateway, forceAddress, ipMasq, mtu, hairpinMode, promiscMode, vlan, enabledad,
macspoofchk (no vlanTrunk, preserveDefaultVlan, portIsolation, disableContainerInterface:
those are covered by the integration tests only). It masquerades with iptables (`ip nat`
through iptables-nft) where ours uses nftables, so for ipMasq only the presence of a
masquerade rule is compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support import kstate
from support.bridge_conformance import Side, World, normalize_result
from support.cni_exec import GO_CNI_DIR
from support.netns import unique

pytestmark = [pytest.mark.netns, pytest.mark.conformance]

GO_BRIDGE = GO_CNI_DIR / "bridge"
if not (GO_BRIDGE.exists() and (GO_CNI_DIR / "host-local").exists()):
    pytest.skip("containernetworking-plugins is not installed (make install adds it)",
                allow_module_level=True)

BRIDGE = "mhconf0"
NET = "confnet"
V4 = [{"subnet": "10.212.0.0/24"}]
V6 = [{"subnet": "fd00:212::/64"}]

VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "isGateway": {"isGateway": True},
    "isDefaultGateway": {"isDefaultGateway": True},
    "forceAddress": {"isGateway": True, "forceAddress": True},
    "mtu": {"mtu": 1400},
    "hairpinMode": {"hairpinMode": True},
    "promiscMode": {"promiscMode": True},
    "macspoofchk": {"macspoofchk": True},
    "ipMasq": {"isGateway": True, "ipMasq": True},
    "dualstack": {"isGateway": True, "isDefaultGateway": True, "ranges": [V4, V6]},
    "enabledad": {"enabledad": True, "ranges": [V4, V6]},
}
BOTH_VERSIONS = ["0.3.1", "0.4.0", "1.0.0"]



def make_conf(version: str, variant: str, data_dir: Path) -> dict[str, Any]:
    keys = dict(VARIANTS[variant])
    ranges = keys.pop("ranges", [V4])
    return {"cniVersion": version, "name": NET, "type": "bridge", "bridge": BRIDGE, **keys,
            "ipam": {"type": "host-local", "dataDir": str(data_dir), "ranges": ranges}}


@pytest.fixture
def go() -> Side:
    return Side("go", GO_BRIDGE, GO_CNI_DIR)


@pytest.fixture
def ours(cni_bin_dir: Path) -> Side:
    return Side("ours", cni_bin_dir / "bridge", cni_bin_dir)


@pytest.fixture
def world(netns_factory: Any, tmp_path: Path) -> Any:
    """A fresh node+container pair per call (a test may need one per side)."""
    count = 0

    def make() -> World:
        nonlocal count
        count += 1
        data_dir = tmp_path / f"data{count}"
        data_dir.mkdir()
        return World(netns_factory("mhn"), netns_factory("mhc"), data_dir, unique("cid"))

    return make


# --- normalisation: what may legitimately differ between two runs ------------------------

def _norm_text(text: str, world: World, veth: str) -> str:
    return text.replace(world.cid, "<cid>").replace(veth, "<veth>")


def _route(r: dict[str, Any], veth: str) -> dict[str, Any]:
    keep = {k: v for k, v in r.items() if k not in ("flags",)}
    if keep.get("dev") == veth:
        keep["dev"] = "<veth>"
    return keep


def snapshot(world: World, veth: str) -> dict[str, Any]:
    """The kernel state that a bridge attachment is made of, with names normalised."""
    h, c = world.host.name, world.container.name
    snap: dict[str, Any] = {}
    bridge = kstate.link(h, BRIDGE)
    if bridge is not None:
        snap["bridge"] = {
            "kind": bridge["linkinfo"]["info_kind"],
            "up": "UP" in bridge["flags"],
            "promisc": "PROMISC" in bridge["flags"],
            "mtu": bridge["mtu"],
            "v4": kstate.addresses(h, BRIDGE, 4),
            "v6": kstate.addresses(h, BRIDGE, 6),
        }
    snap["ports"] = {
        "<veth>" if name == veth else name: {
            "up": "UP" in port["flags"], "mtu": port["mtu"],
            "hairpin": kstate.port_info(port).get("hairpin"),
            "isolated": kstate.port_info(port).get("isolated"),
        }
        for name, port in kstate.ports_of(h, BRIDGE).items()
    }
    snap["host_routes"] = sorted(
        (_route(r, veth) for r in kstate.routes(h, 4) + kstate.routes(h, 6)
         if r.get("dev") == BRIDGE and not r["dst"].startswith("fe80")), key=repr)
    snap["ip_forward"] = kstate.sysctl(h, "net.ipv4.ip_forward")
    snap["ipv6_forwarding"] = kstate.sysctl(h, "net.ipv6.conf.all.forwarding")
    eth0 = kstate.link(c, "eth0")
    if eth0 is not None:
        snap["eth0"] = {
            "up": "UP" in eth0["flags"], "mtu": eth0["mtu"],
            "v4": kstate.addresses(c, "eth0", 4), "v6": kstate.addresses(c, "eth0", 6),
            "accept_dad": kstate.sysctl(c, "net.ipv6.conf.eth0.accept_dad"),
        }
    snap["container_routes"] = sorted(
        (_route(r, veth) for r in kstate.routes(c, 4) + kstate.routes(c, 6)
         if not r["dst"].startswith("fe80")), key=repr)
    chains = kstate.nft_chains(h)
    snap["nft_chains"] = sorted(_norm_text(n, world, veth) for n in chains)
    base = chains.get("PREROUTING")
    if base is not None:
        snap["nft_base_chain"] = {k: base.get(k) for k in ("type", "hook", "prio", "policy")}
    snap["nft_rules"] = sorted(
        (_norm_text(r["chain"], world, veth), _norm_text(str(r.get("comment")), world, veth))
        for r in kstate.nft_rules(h))
    snap["masquerade"] = kstate.has_masquerade(h)
    snap["allocations"] = allocation_contents(world)
    return snap


def allocation_contents(world: World) -> dict[str, str]:
    """host-local's files: one per IP (container ID and ifname), last_reserved_ip.N."""
    d = world.data_dir / NET
    if not d.exists():
        return {}
    return {p.name: p.read_text().replace(world.cid, "<cid>")
            for p in sorted(d.iterdir()) if p.name != "lock"}


def ip_files(world: World) -> list[str]:
    return [n for n in allocation_contents(world) if not n.startswith("last_reserved_ip")]


@dataclass
class Run:
    result: dict[str, Any]
    after_add: dict[str, Any]
    after_del: dict[str, Any]


def add_check_del(side: Side, world: World, conf: dict[str, Any]) -> Run:
    result = world.cni(side, "ADD", conf).ok()
    veth = result["interfaces"][1]["name"]
    try:
        after_add = snapshot(world, veth)
        if conf["cniVersion"] != "0.3.1":
            world.cni(side, "CHECK", {**conf, "prevResult": result}).ok()
    finally:
        world.cni(side, "DEL", conf).ok()
    after_del = snapshot(world, veth)
    world.cni(side, "DEL", conf).ok()  # idempotent
    return Run(normalize_result(result, world), after_add, after_del)


def without_empty_base_chain(snap: dict[str, Any]) -> dict[str, Any]:
    """After the last DEL the reference leaves `bridge nat` with an empty PREROUTING; ours
    removes the table once nothing is left in it (under its nft lock). Both are clean."""
    out = dict(snap)
    if not [r for r in out["nft_rules"] if r[0] == "PREROUTING"]:
        out["nft_chains"] = [c for c in out["nft_chains"] if c != "PREROUTING"]
        out.pop("nft_base_chain", None)
    return out


def assert_clean_after_del(snap: dict[str, Any]) -> None:
    assert snap["ports"] == {}
    assert "eth0" not in snap
    assert [c for c in snap["nft_chains"] if c.startswith("cni-br-iface")] == []
    assert [r for r in snap["nft_rules"] if "<cid>" in r[1]] == []
    assert [n for n in snap["allocations"] if not n.startswith("last_reserved_ip")] == []


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("version", BOTH_VERSIONS)
def test_same_result_and_kernel_state(go: Side, ours: Side, world: Any, version: str,
                                      variant: str) -> None:
    w_go, w_ours = world(), world()
    theirs = add_check_del(go, w_go, make_conf(version, variant, w_go.data_dir))
    mine = add_check_del(ours, w_ours, make_conf(version, variant, w_ours.data_dir))

    assert mine.result == theirs.result
    if variant == "ipMasq":
        assert theirs.after_add["masquerade"] and mine.after_add["masquerade"]
        for snap in (theirs.after_add, mine.after_add, theirs.after_del, mine.after_del):
            # iptables-nft vs nftables: different tables, same effect (checked above).
            snap.pop("masquerade")
    assert mine.after_add == theirs.after_add
    assert_clean_after_del(theirs.after_del)
    assert_clean_after_del(mine.after_del)
    if variant != "ipMasq":
        assert without_empty_base_chain(mine.after_del) == \
            without_empty_base_chain(theirs.after_del)


@pytest.mark.parametrize("variant", ["plain", "isDefaultGateway", "macspoofchk", "dualstack"])
def test_v110_matches_reference_at_100(go: Side, ours: Side, world: Any, variant: str) -> None:
    """1.1.0 is ours only: it must leave what the reference leaves at 1.0.0."""
    w_go, w_ours = world(), world()
    theirs = add_check_del(go, w_go, make_conf("1.0.0", variant, w_go.data_dir))
    mine = add_check_del(ours, w_ours, make_conf("1.1.0", variant, w_ours.data_dir))
    assert mine.result.pop("cniVersion") == "1.1.0"
    theirs.result.pop("cniVersion")
    assert mine.result == theirs.result
    assert mine.after_add == theirs.after_add
    assert without_empty_base_chain(mine.after_del) == \
        without_empty_base_chain(theirs.after_del)


def test_v110_status_and_gc(ours: Side, world: Any) -> None:
    w = world()
    conf = make_conf("1.1.0", "macspoofchk", w.data_dir)
    w.cni(ours, "ADD", conf).ok()
    try:
        assert w.cni(ours, "STATUS", conf).ok() is None
        keep = {**conf, "cni.dev/valid-attachments": [{"containerID": w.cid, "ifname": "eth0"}]}
        assert w.cni(ours, "GC", keep).ok() is None
        assert ip_files(w) == ["10.212.0.2"]
        gone = {**conf, "cni.dev/valid-attachments": []}
        assert w.cni(ours, "GC", gone).ok() is None
        assert ip_files(w) == []
    finally:
        w.cni(ours, "DEL", conf).ok()


CROSS_VARIANTS = ["macspoofchk", "dualstack"]


@pytest.mark.parametrize("variant", CROSS_VARIANTS)
@pytest.mark.parametrize(("adder", "deleter"), [("go", "ours"), ("ours", "go")])
def test_cross_del_leaves_nothing(go: Side, ours: Side, world: Any, adder: str, deleter: str,
                                  variant: str) -> None:
    sides = {"go": go, "ours": ours}
    w = world()
    conf = {**make_conf("1.0.0", variant, w.data_dir), "macspoofchk": True, "isGateway": True}
    result = w.cni(sides[adder], "ADD", conf).ok()
    veth = result["interfaces"][1]["name"]
    try:
        snap = snapshot(w, veth)
        assert len([c for c in snap["nft_chains"] if c.startswith("cni-br-iface")]) == 2
        assert ip_files(w)
        if deleter == "ours":
            # our CHECK accepts what the reference built
            w.cni(sides[deleter], "CHECK", {**conf, "prevResult": result}).ok()
    finally:
        w.cni(sides[deleter], "DEL", conf).ok()
    after = snapshot(w, veth)
    assert_clean_after_del(after)
    assert kstate.link(w.host.name, veth) is None


@pytest.mark.parametrize("first", ["go", "ours"])
def test_host_local_files_interchangeable(go: Side, ours: Side, world: Any, first: str) -> None:
    """One data dir, both implementations: no duplicate IP, each frees the other's."""
    sides = {"go": go, "ours": ours}
    second = "ours" if first == "go" else "go"
    w = world()
    conf = make_conf("1.0.0", "plain", w.data_dir)
    cid2 = unique("cid")
    r1 = w.cni(sides[first], "ADD", conf).ok()
    try:
        r2 = w.cni(sides[second], "ADD", conf, cid=cid2, ifname="eth1").ok()
        try:
            assert r1["ips"][0]["address"] == "10.212.0.2/24"
            assert r2["ips"][0]["address"] == "10.212.0.3/24"
            assert ip_files(w) == ["10.212.0.2", "10.212.0.3"]
            # Line breaks differ between reference releases ("\n" in v1.1.1, "\r\n" later).
            for ip, cid, ifname in (("10.212.0.2", w.cid, "eth0"), ("10.212.0.3", cid2, "eth1")):
                assert (w.data_dir / NET / ip).read_text().splitlines() == [cid, ifname]
        finally:
            w.cni(sides[first], "DEL", conf, cid=cid2, ifname="eth1").ok()
    finally:
        w.cni(sides[second], "DEL", conf).ok()
    assert ip_files(w) == []
