"""dhcp IPAM against a real DHCP server (dnsmasq) on the node's bridge: a lease on ADD,
renewed at T1, released on DEL, re-adopted after a daemon restart, and no longer renewed
once the pod's namespace is gone."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multihome.ipam import dhcp_leases
from support.daemon_world import Node
from support.dhcp_server import SERVER_ADDRESS, DhcpWorld, dhcp_lan
from support.netns import Netns, del_netns


def _lease_key(cid: str = "cid1", ifname: str = "eth0") -> dhcp_leases.LeaseKey:
    return dhcp_leases.LeaseKey(cid, "dhcpnet", ifname)


def _pod_veths(dhcp: DhcpWorld) -> list[str]:
    """Host ends of pod veths on the node (the server's own port, dp*, is not one)."""
    return [name for name, link in dhcp.lab.node_links().items()
            if link.get("linkinfo", {}).get("info_kind") == "veth" and not name.startswith("dp")]


def _acks_for(dhcp: DhcpWorld, ip: str) -> int:
    return sum(1 for line in dhcp.server.log_lines("DHCPACK") if f" {ip} " in line)


def test_add_returns_the_servers_lease_as_the_result(dhcp: DhcpWorld) -> None:
    pod = dhcp.make_ns("mhdp")
    result = dhcp.lab.add(dhcp.conf(), pod)

    ip = result["ips"][0]
    address = ip["address"].split("/")[0]
    assert ip["address"].endswith("/24") and address.startswith("10.71.0.")
    assert ip["gateway"] == SERVER_ADDRESS
    assert {"dst": "0.0.0.0/0", "gw": SERVER_ADDRESS} in result["routes"]
    assert dhcp.pod_addresses(pod) == [ip["address"]]
    leased = dhcp.server.lease_for(address)
    assert leased is not None, dhcp.server.leases()
    # the reference's client ID: <container id>/<network>/<ifname>, type 0
    assert bytes.fromhex(leased.client_id.replace(":", "")) == b"\0cid1/dhcpnet/eth0"


def test_lease_is_renewed_at_t1_and_each_renewal_recorded(dhcp: DhcpWorld) -> None:
    pod = dhcp.make_ns("mhdp")
    result = dhcp.lab.add(dhcp.conf(), pod)
    address = result["ips"][0]["address"].split("/")[0]
    first = dhcp.server.lease_for(address)
    assert first is not None
    record = Path(dhcp.manager.dir) / _lease_key().file_name
    obtained = json.loads(record.read_text())["lease"]["obtained"]

    dhcp.server.wait_for("a renewal (second DHCPACK)", lambda: _acks_for(dhcp, address) >= 2,
                         timeout=15)
    dhcp.server.wait_for("the renewed expiry", lambda: (
        (lease := dhcp.server.lease_for(address)) is not None and lease.expires > first.expires))
    assert json.loads(record.read_text())["lease"]["obtained"] > obtained
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dhcp.manager.dir).st_mode) == 0o700
    assert dhcp.pod_addresses(pod) == [result["ips"][0]["address"]]


def test_del_releases_the_lease_and_stops_renewing(dhcp: DhcpWorld) -> None:
    pod = dhcp.make_ns("mhdp")
    conf = dhcp.conf()
    address = dhcp.lab.add(conf, pod)["ips"][0]["address"].split("/")[0]

    dhcp.lab.call("DEL", conf, pod).ok()

    dhcp.server.wait_for("DHCPRELEASE", lambda: dhcp.server.lease_for(address) is None,
                         timeout=10)
    assert any(address in line for line in dhcp.server.log_lines("DHCPRELEASE"))
    assert dhcp.manager.held() == []
    assert list(Path(dhcp.manager.dir).iterdir()) == []
    acks = _acks_for(dhcp, address)
    time.sleep(4)  # past T1: a client still running would have renewed
    assert _acks_for(dhcp, address) == acks
    dhcp.lab.call("DEL", conf, pod).ok()  # DEL twice is fine
    assert _pod_veths(dhcp) == []
    assert pod.run("ip", "link", "show", "eth0", check=False).returncode != 0


def test_daemon_restart_readopts_the_lease_and_renews_it(dhcp: DhcpWorld) -> None:
    pod = dhcp.make_ns("mhdp")
    conf = dhcp.conf()
    result = dhcp.lab.add(conf, pod)
    address = result["ips"][0]["address"].split("/")[0]

    dhcp.manager.shutdown()  # the daemon stops: no release, the record stays
    assert dhcp.server.lease_for(address) is not None
    assert dhcp.server.log_lines("DHCPRELEASE") == []
    acks = _acks_for(dhcp, address)

    restarted = dhcp_leases.LeaseManager(dhcp.manager.dir.rsplit("/", 1)[0])
    dhcp_leases.install(restarted)
    dhcp.manager = restarted  # the fixture's teardown stops this one
    assert restarted.readopt() == 1
    # asked for again (INIT-REBOOT) and then renewed at T1: same address each time
    dhcp.server.wait_for("the re-adopted lease's ACKs", lambda: _acks_for(dhcp, address)
                         >= acks + 2, timeout=15)
    # dnsmasq rewrites its lease file in place: read it until it is whole
    dhcp.server.wait_for("the one lease", lambda: [
        lease.ip for lease in dhcp.server.leases()] == [address], timeout=5)
    session = restarted.session_of(_lease_key())
    assert session is not None
    dhcp.server.wait_for("the client's two ACKs", lambda: session.acks >= 2, timeout=5)
    assert session.lease is not None and str(session.lease.address.ip) == address
    # an IPAM ADD retried gets the held lease, not a new one
    again = dhcp.ipam("ADD", conf, pod).ok()
    assert again["ips"][0]["address"] == result["ips"][0]["address"]

    dhcp.lab.call("DEL", conf, pod).ok()
    dhcp.server.wait_for("DHCPRELEASE", lambda: dhcp.server.lease_for(address) is None)


def test_renewing_stops_when_the_pod_namespace_is_gone(dhcp: DhcpWorld) -> None:
    pod = dhcp.make_ns("mhdp")
    address = dhcp.lab.add(dhcp.conf(), pod)["ips"][0]["address"].split("/")[0]
    session = dhcp.manager.session_of(_lease_key())
    assert session is not None and session.alive

    del_netns(pod.name)  # the pod is gone without a DEL

    deadline = time.monotonic() + 10
    while session.alive and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not session.alive, "the client still runs in a deleted namespace"
    assert "gone" in session.ended_because
    assert dhcp.manager.held() == []
    assert list(Path(dhcp.manager.dir).iterdir()) == []
    # nothing pins the namespace any more: the kernel removed it and the veth pair
    deadline = time.monotonic() + 10
    while _pod_veths(dhcp) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pod_veths(dhcp) == []
    acks = _acks_for(dhcp, address)
    time.sleep(4)
    assert _acks_for(dhcp, address) == acks


def _bridge_conf(node: Node) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "dhcpnet", "type": "bridge", "bridge": node.bridge,
            "socketPath": node.socket,
            "ipam": {"type": "dhcp", "daemonSocketPath": "/run/cni/dhcp.sock",
                     "provide": [{"option": "host-name", "fromArg": "K8S_POD_NAME"}]}}


def test_daemon_serves_dhcp_and_survives_a_crash_with_the_same_address(
        node: Node, netns_factory: Callable[..., Netns], tmp_path: Path) -> None:
    state = tmp_path / "daemon-state"
    pod = netns_factory("mhdp")
    with dhcp_lan(node.ns, node.bridge, netns_factory("mhds"), tmp_path / "dnsmasq",
                  t1=3, t2=5) as server:
        daemon = node.start("--state-dir", str(state))
        result = node.cni("ADD", "pod-a", pod, exe="bridge", conf=_bridge_conf(node)).ok()
        address = result["ips"][0]["address"].split("/")[0]
        leased = server.lease_for(address)
        assert leased is not None and leased.hostname == "pod-a"  # K8S_POD_NAME, fromArg
        records = list((state / "dhcp").iterdir())
        assert len(records) == 1 and stat.S_IMODE(records[0].stat().st_mode) == 0o600

        os.killpg(daemon.pid, signal.SIGKILL)  # a crash: nothing is released
        daemon.wait(10)
        acks = sum(1 for line in server.log_lines("DHCPACK") if f" {address} " in line)
        node.start("--state-dir", str(state))
        server.wait_for("the restarted daemon's renewals", lambda: sum(
            1 for line in server.log_lines("DHCPACK") if f" {address} " in line) >= acks + 2,
            timeout=15)
        server.wait_for("the one lease", lambda: [
            lease.ip for lease in server.leases()] == [address], timeout=5)

        node.cni("DEL", "pod-a", pod, exe="bridge", conf=_bridge_conf(node)).ok()
        server.wait_for("DHCPRELEASE", lambda: server.lease_for(address) is None)
        assert list((state / "dhcp").iterdir()) == []


def test_without_a_daemon_add_is_try_again_later_and_leaves_nothing(
        node: Node, netns_factory: Callable[..., Netns]) -> None:
    pod = netns_factory("mhdp")
    node.ns.run("ip", "link", "add", node.bridge, "type", "bridge")
    out = node.cni("ADD", "pod-b", pod, exe="bridge", conf=_bridge_conf(node))
    assert out.returncode != 0 and out.json["code"] == 11, out.stdout
    assert "multihome daemon" in out.json["msg"]
    assert node.leftovers(pod)["pod links"] == []
    assert node.leftovers(pod)["bridge ports"] == ""


def test_add_for_an_interface_the_pod_lacks_fails_at_once_and_holds_nothing(
        dhcp: DhcpWorld) -> None:
    pod = dhcp.make_ns("mhdp")
    out = dhcp.ipam("ADD", dhcp.conf(), pod, ifname="nope0").error(11)
    assert "nope0 not found" in out["msg"]
    assert dhcp.manager.held() == []
    assert dhcp.server.leases() == []


def test_gc_releases_the_leases_of_attachments_no_longer_valid(dhcp: DhcpWorld) -> None:
    kept_pod, gone_pod = dhcp.make_ns("mhdp"), dhcp.make_ns("mhdp")
    kept = dhcp.lab.add(dhcp.conf(), kept_pod, cid="kept")["ips"][0]["address"].split("/")[0]
    gone = dhcp.lab.add(dhcp.conf(), gone_pod, cid="gone")["ips"][0]["address"].split("/")[0]

    conf = {**dhcp.conf(), "cniVersion": "1.1.0",
            "cni.dev/valid-attachments": [{"containerID": "kept", "ifname": "eth0"}]}
    dhcp.ipam("GC", conf, kept_pod).ok()

    dhcp.server.wait_for("the GC's DHCPRELEASE", lambda: dhcp.server.lease_for(gone) is None,
                         timeout=10)
    assert [key.container_id for key in dhcp.manager.held()] == ["kept"]
    assert dhcp.server.lease_for(kept) is not None


def test_concurrent_adds_of_one_attachment_share_one_client_and_address(
        dhcp: DhcpWorld) -> None:
    pod = dhcp.make_ns("mhdp")
    port = f"cp{pod.name[-6:]}"  # eth0 on the node bridge, as a plugin would make it
    pod.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns",
            dhcp.lab.node.name)
    dhcp.lab.node.run("ip", "link", "set", port, "master", dhcp.bridge, "up")
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(
        dhcp.ipam("ADD", dhcp.conf(), pod).ok())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 3
    assert len({r["ips"][0]["address"] for r in results}) == 1
    assert len(dhcp.manager.held()) == 1
    dhcp.server.wait_for("one lease", lambda: len(dhcp.server.leases()) == 1)
    time.sleep(1)
    assert len(dhcp.server.leases()) == 1
    assert len([t for t in threading.enumerate() if t.name == "dhcp eth0"]) == 1


def test_check_passes_while_the_lease_is_held_and_fails_after_del(dhcp: DhcpWorld) -> None:
    pod = dhcp.make_ns("mhdp")
    conf = dhcp.conf()
    result = dhcp.lab.add(conf, pod)
    checked = {**conf, "prevResult": result}
    dhcp.lab.call("CHECK", checked, pod).ok()
    wrong = {**result, "ips": [{**result["ips"][0], "address": "10.71.0.2/24"}]}
    assert "10.71.0.2" in dhcp.ipam("CHECK", {**conf, "prevResult": wrong}, pod).error(
        999)["msg"]
    dhcp.ipam("DEL", conf, pod).ok()
    assert "no DHCP lease" in dhcp.ipam("CHECK", checked, pod).error(999)["msg"]


def test_when_the_server_ignores_renewals_the_client_rebinds_at_t2(dhcp: DhcpWorld) -> None:
    pod = dhcp.make_ns("mhdp")
    address = dhcp.lab.add(dhcp.conf(), pod)["ips"][0]["address"].split("/")[0]
    first = dhcp.server.lease_for(address)
    assert first is not None
    # renewals (T1) are unicast to the server's address: drop them; rebinding (T2) is
    # broadcast and still reaches it
    dhcp.server.ns.run("nft", "add table inet mhdrop")
    dhcp.server.ns.run("nft", "add chain inet mhdrop in { type filter hook input priority 0; }")
    dhcp.server.ns.run("nft", f"add rule inet mhdrop in ip daddr {SERVER_ADDRESS} "
                       "udp dport 67 counter drop")

    dhcp.server.wait_for("a renewal the server never saw", lambda: "packets 0 " not in
                         dhcp.server.ns.run("nft", "list table inet mhdrop").stdout,
                         timeout=10)
    dhcp.server.wait_for("the rebind's ACK extending the lease", lambda: (
        (lease := dhcp.server.lease_for(address)) is not None and lease.expires > first.expires),
        timeout=15)
    session = dhcp.manager.session_of(_lease_key())
    assert session is not None and session.lease is not None
    assert str(session.lease.address.ip) == address
