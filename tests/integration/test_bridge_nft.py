"""nftables state of the bridge plugin: macspoofchk (reference scheme), ipMasq, GC."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from multihome.net import netns
from multihome.plugins import bridge_nft
from support import kstate
from support.bridge_harness import Lab

pytestmark = pytest.mark.netns

GO_BRIDGE = Path("/usr/lib/cni/bridge")


def _drops(lab: Lab, cid: str) -> int:
    with netns.entered(lab.node.path):
        return bridge_nft.drop_counter(bridge_nft.spoof_id(cid, "eth0"))


def test_macspoofchk_chains_and_comments_match_the_reference(lab: Lab) -> None:
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), macspoofchk=True)
    result = lab.add(conf, c1, cid="spoof1")
    host_veth, mac = result["interfaces"][1]["name"], result["interfaces"][2]["mac"]
    chains = kstate.nft_chains(lab.node.name)
    base = chains["PREROUTING"]
    assert (base["type"], base["hook"], base["prio"]) == ("filter", "prerouting", -300)
    assert {"cni-br-iface-spoof1-eth0", "cni-br-iface-spoof1-eth0-mac"} <= set(chains)
    rules = kstate.nft_rules(lab.node.name)
    assert {r["comment"] for r in rules} == {"macspoofchk-spoof1-eth0"}
    by_chain = {r["chain"]: r for r in rules}
    jump = by_chain["PREROUTING"]["expr"]
    assert jump[0]["match"]["right"] == host_veth
    assert jump[1] == {"jump": {"target": "cni-br-iface-spoof1-eth0"}}
    mac_rules = [r["expr"] for r in rules if r["chain"] == "cni-br-iface-spoof1-eth0-mac"]
    assert mac_rules[0][0]["match"]["right"] == mac and mac_rules[0][1] == {"return": None}
    assert mac_rules[1][-1] == {"drop": None} and "counter" in mac_rules[1][0]
    lab.call("DEL", conf, c1, cid="spoof1").ok()
    lab.assert_clean(c1)


def test_changed_mac_loses_traffic_and_is_counted(lab: Lab) -> None:
    c1, c2 = lab.make_ns("mhbc"), lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), macspoofchk=True)
    r1 = lab.add(conf, c1, cid="good")
    r2 = lab.add(conf, c2, cid="peer")
    ip2 = r2["ips"][0]["address"].split("/")[0]
    assert kstate.ping(c1.name, ip2)
    before = _drops(lab, "good")

    c1.run("ip", "link", "set", "eth0", "address", "02:de:ad:be:ef:01")
    assert not kstate.ping(c1.name, ip2, count=2, timeout=3)
    assert _drops(lab, "good") > before

    c1.run("ip", "link", "set", "eth0", "address", r1["interfaces"][2]["mac"])
    assert kstate.ping(c1.name, ip2, count=1, timeout=5)
    lab.call("DEL", conf, c1, cid="good").ok()
    lab.call("DEL", conf, c2, cid="peer").ok()
    lab.assert_clean(c1, c2)


def test_ip_masq_rules_present_and_removed(lab: Lab) -> None:
    c1, c2 = lab.make_ns("mhbc"), lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), ipMasq=True, isGateway=True)
    lab.add(conf, c1, cid="m1")
    lab.add(conf, c2, cid="m2")
    rules = kstate.nft_rules(lab.node.name, "inet", "multihome_masq")
    comments = {r["comment"] for r in rules}
    assert comments == {bridge_nft.masq_comment("mhbnet", "m1", "eth0"),
                        bridge_nft.masq_comment("mhbnet", "m2", "eth0")}
    text = json.dumps(rules)
    assert '"masquerade"' in text and "10.70.0.2" in text and "10.70.0.3" in text
    lab.call("DEL", conf, c1, cid="m1").ok()
    left = kstate.nft_rules(lab.node.name, "inet", "multihome_masq")
    assert [r["comment"] for r in left] == [bridge_nft.masq_comment("mhbnet", "m2", "eth0")]
    lab.call("DEL", conf, c2, cid="m2").ok()
    lab.assert_clean(c1, c2)  # includes: table inet multihome_masq is gone


def test_gc_removes_only_stale_attachments(lab: Lab) -> None:
    c1, c2 = lab.make_ns("mhbc"), lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), version="1.1.0", macspoofchk=True, ipMasq=True)
    lab.add(conf, c1, cid="keep")
    lab.add(conf, c2, cid="lost")
    gc_conf = {**conf, "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}
    # The runtime lost track of "lost" (a crash): its veth is gone, its rules and IP are not.
    c2.run("ip", "link", "del", "eth0")
    lab.call("GC", gc_conf).ok()
    state = kstate.macspoof_state(lab.node.name, "lost", "eth0")
    assert state == {"chains": [], "comments": []}
    assert kstate.macspoof_state(lab.node.name, "keep", "eth0")["chains"]
    masq = [r["comment"] for r in kstate.nft_rules(lab.node.name, "inet", "multihome_masq")]
    assert masq == [bridge_nft.masq_comment("mhbnet", "keep", "eth0")]
    assert lab.allocations() == ["10.70.0.2"], "GC must free the lost attachment's IP"
    lab.call("DEL", conf, c1, cid="keep").ok()
    lab.assert_clean(c1, c2)


@pytest.mark.conformance
@pytest.mark.skipif(not GO_BRIDGE.exists(), reason="reference bridge plugin not installed")
@pytest.mark.parametrize("adder", ["ours", "reference"])
def test_either_plugins_del_removes_the_others_spoof_rules(lab: Lab, adder: str) -> None:
    c1 = lab.make_ns("mhbc")
    conf = lab.conf(lab.bridge_name(), subnet=None, macspoofchk=True)

    def go(command: str) -> None:
        env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID="x1", CNI_NETNS=c1.path,
                   CNI_IFNAME="eth0", CNI_PATH="/usr/lib/cni")
        proc = subprocess.run(["ip", "netns", "exec", lab.node.name, str(GO_BRIDGE)],
                              input=json.dumps(conf), env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    if adder == "ours":
        lab.add(conf, c1, cid="x1")
        go("DEL")
    else:
        go("ADD")
        assert kstate.macspoof_state(lab.node.name, "x1", "eth0")["chains"]
        lab.call("DEL", conf, c1, cid="x1").ok()
    assert kstate.macspoof_state(lab.node.name, "x1", "eth0") == {"chains": [], "comments": []}
    assert kstate.nft_rules(lab.node.name) == []


def test_a_repeated_setup_keeps_one_mac_and_teardown_removes_every_trace(lab: Lab) -> None:
    # ADD does not list the table (its cost must not grow with the node's attachments):
    # a second setup of the same attachment replaces its MAC rules, and DEL removes all
    # jump rules carrying its comment, the table with the last attachment
    with netns.entered(lab.node.path):
        bridge_nft.spoof_setup("mhv-a", "02:00:00:00:00:0a", "rep-eth0")
        bridge_nft.spoof_setup("mhv-b", "02:00:00:00:00:0b", "other-eth0")
        bridge_nft.spoof_setup("mhv-a", "02:00:00:00:00:0c", "rep-eth0")
    rules = kstate.nft_rules(lab.node.name)
    macs = [r["expr"][0]["match"]["right"] for r in rules
            if r["chain"] == "cni-br-iface-rep-eth0-mac" and "match" in r["expr"][0]]
    assert macs == ["02:00:00:00:00:0c"]
    with netns.entered(lab.node.path):
        assert bridge_nft.spoof_teardown("rep-eth0") == "mhv-a"
        assert bridge_nft.spoof_teardown("rep-eth0") == ""  # twice: nothing left to do
    assert {r["comment"] for r in kstate.nft_rules(lab.node.name)} == {
        "macspoofchk-other-eth0"}
    assert not {"cni-br-iface-rep-eth0", "cni-br-iface-rep-eth0-mac"} & set(
        kstate.nft_chains(lab.node.name))
    with netns.entered(lab.node.path):
        assert bridge_nft.spoof_teardown("other-eth0") == "mhv-b"
    assert not any(t.endswith(" nat") for t in kstate.nft_tables(lab.node.name))
