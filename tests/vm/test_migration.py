"""A running lab VM that changes: NIC hot-plug/unplug and live migration, real qemu.

One VM, pod network (masquerade) + bridge-dev (bridge binding, static address). In
order: failure paths (no target qemu is ever started), a NIC hot-plugged and unplugged,
a NIC hot-plugged to stay, then one real migration under a continuous ping from the
external host, which the hot-plugged NIC survives.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from support.host_state import host_netns
from support.netns import unique
from support.vm_world import (
    EXTERNAL_HOST,
    NS,
    SUBNET,
    VMLab,
    down,
    frames_from,
    qemu_alive,
    skip_without_vm_tools,
    up,
)

pytestmark = pytest.mark.netns

VM_IP, HOTPLUG_IP = f"{SUBNET}.40", f"{SUBNET}.41"
PING_INTERVAL = 0.05
# pings (one every 50 ms) the switch-over may cost: 1 s of silence. Measured on the
# 2-core development VM under other test runs' load: 1-8 lost.
MAX_LOST = 20
DAD, RARP = "86dd-unspecified", "8035"


class World:
    def __init__(self, lab: VMLab, vm: str, nad: str) -> None:
        self.lab, self.vm, self.nad = lab, vm, nad

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = json.loads(
            self.lab.ok("vm", "get", self.vm, "-n", NS, "-o", "json"))[0]
        return rec

    def guest(self, script: str) -> subprocess.CompletedProcess[str]:
        return self.lab.mh("vm", "exec", self.vm, "-n", NS, "--", "sh", "-c", script)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    skip_without_vm_tools()
    lab = up(tmp_path_factory.mktemp("vmmig"))
    try:
        nad = lab.nad_file("bridge-dev", {"cniVersion": "0.3.1", "name": "bridge-dev",
                                          "type": "cnv-bridge", "bridge": lab.dev_bridge,
                                          "macspoofchk": True, "vlan": 0})
        lab.ok("apply", "-f", nad, "-n", NS)
        vm = unique("vmm")
        lab.ok("vm", "run", vm, "-n", NS, "--networks", "bridge-dev",
               "--address", f"net1={VM_IP}/24")
        yield World(lab, vm, nad)
    finally:
        down(lab)


def _guard_tables() -> str:
    return subprocess.run(["nft", "list", "tables", "bridge"], capture_output=True,
                          text=True, check=False).stdout


def test_a_target_that_cannot_start_leaves_the_running_vm_untouched(world: World) -> None:
    lab, vm = world.lab, world.vm
    before = world.record()
    pid = lab.qemu_pid(vm)
    assert world.guest("echo kept > /tmp/mark").returncode == 0
    lab.ok("delete", "net-attach-def", "bridge-dev", "-n", NS)
    try:
        failed = lab.mh("vm", "migrate", vm, "-n", NS)
    finally:
        lab.ok("apply", "-f", world.nad, "-n", NS)
    assert failed.returncode == 1
    [line] = failed.stderr.splitlines()
    assert line.startswith(f"Error: migrate: target launcher pod {NS}/virt-launcher-{vm}-")
    assert "NAD multus-test/bridge-dev not found" in line
    assert f"the VM stays on virt-launcher-{vm}" in failed.stdout
    # same qemu, same pod, same record; no target pod, guard or target dir left
    assert lab.qemu_pid(vm) == pid and qemu_alive(pid)
    after = world.record()
    assert after["launcher"] == before["launcher"] and after["target_pod"] == ""
    assert after["nics"] == before["nics"]
    pods = lab.ok("pod", "get", "-n", NS)
    assert f"virt-launcher-{vm}-" not in pods and f"virt-launcher-{vm}" in pods
    assert not [n for n in host_netns() if n.startswith(f"mh-{NS}-virt-launcher-{vm}-")]
    assert "mh-migrate-" not in _guard_tables()
    assert not list(lab.vm_dir(vm).glob("target-*"))
    assert world.guest("cat /tmp/mark").stdout == "kept\n"
    assert lab.in_external("ping", "-c", "2", "-W", "2", VM_IP).returncode == 0


def _guest_ifname(world: World, mac: str) -> str:
    """The guest's interface with `mac` (the guest names hot-plugged NICs itself)."""
    out = world.guest("for d in /sys/class/net/eth*; do echo ${d##*/} $(cat $d/address); "
                      "done").stdout
    names = [line.split()[0] for line in out.splitlines() if line.split()[1:] == [mac]]
    assert len(names) == 1, out
    return names[0]


def _plug(world: World, address: str) -> tuple[dict[str, Any], str]:
    """Hot-plug a bridge-dev NIC, give the guest its address; (record NIC, guest ifname)."""
    out = world.lab.ok("vm", "add-nic", world.vm, "bridge-dev", "-n", NS,
                       "--address", f"{address}/24")
    nic = world.record()["nics"][-1]
    assert f"hot-plugged on {NS}/bridge-dev via pod {nic['ifname']}" in out
    # the guest's kernel binds the new PCI device; its OS (here: us) configures it
    ifname = ""
    for _ in range(50):
        with contextlib.suppress(AssertionError):
            ifname = _guest_ifname(world, nic["mac"])
            break
        time.sleep(0.2)
    assert ifname, "the guest never saw the hot-plugged NIC"
    assert world.guest(f"ip link set {ifname} up && "
                       f"ip addr add {address}/24 dev {ifname}").returncode == 0
    return nic, ifname


def _status_interfaces(world: World) -> list[str]:
    """The interfaces the launcher pod's network-status names."""
    pod = json.loads(world.lab.ok("pod", "get", world.record()["launcher"] or
                                  f"virt-launcher-{world.vm}", "-n", NS, "-o", "json"))
    status = json.loads(pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
    return [s["interface"] for s in status]


def test_hot_plug_of_a_missing_nad_leaves_vm_and_pod_as_they_were(world: World) -> None:
    lab, vm = world.lab, world.vm
    before = world.record()
    pod = json.loads(lab.ok("pod", "get", f"virt-launcher-{vm}", "-n", NS, "-o", "json"))
    failed = lab.mh("vm", "add-nic", vm, "no-such-nad", "-n", NS)
    assert failed.returncode == 1
    [line] = failed.stderr.splitlines()
    assert f'cannot hot-plug no-such-nad into VM "{vm}"' in line
    assert "NAD multus-test/no-such-nad not found" in line
    assert world.record()["nics"] == before["nics"]
    after = json.loads(lab.ok("pod", "get", f"virt-launcher-{vm}", "-n", NS, "-o", "json"))
    assert after["metadata"]["annotations"] == pod["metadata"]["annotations"]
    launcher = f"mh-{NS}-virt-launcher-{vm}"
    links = subprocess.run(["ip", "netns", "exec", launcher, "ip", "-br", "link"],
                           capture_output=True, text=True, check=True).stdout
    assert "net2" not in links
    masq = lab.mh("vm", "remove-nic", vm, "eth0", "-n", NS)
    assert masq.returncode == 1 and "only bridge NICs can be unplugged" in masq.stderr
    badaddr = lab.mh("vm", "add-nic", vm, "bridge-dev", "-n", NS, "--address", "10.1.2")
    assert badaddr.returncode == 1 and "invalid address '10.1.2'" in badaddr.stderr
    assert world.record()["nics"] == before["nics"]
    assert _status_interfaces(world) == ["eth0", "net1"]


def test_hot_plugged_nic_carries_traffic_and_unplug_removes_it(world: World) -> None:
    lab, vm = world.lab, world.vm
    launcher = f"mh-{NS}-virt-launcher-{vm}"
    nic, ifname = _plug(world, HOTPLUG_IP)
    assert nic["binding"] == "bridge" and nic["ifname"] == "net2"
    assert "net2" in _status_interfaces(world)
    assert world.guest(f"ping -c 2 -W 2 -I {ifname} {EXTERNAL_HOST}").returncode == 0
    assert lab.in_external("ping", "-c", "2", "-W", "2", HOTPLUG_IP).returncode == 0
    out = lab.ok("vm", "remove-nic", vm, "net2", "-n", NS)
    assert f"{nic['guest_ifname']} unplugged, pod net2 detached" in out
    assert "net2" not in [n["ifname"] for n in world.record()["nics"]]
    assert _status_interfaces(world) == ["eth0", "net1"]
    assert nic["mac"] not in world.guest("cat /sys/class/net/*/address").stdout
    links = subprocess.run(["ip", "netns", "exec", launcher, "ip", "-br", "link"],
                           capture_output=True, text=True, check=True).stdout
    assert "net2" not in links and "k6t-net2" not in links and "tap-net2" not in links
    assert lab.in_external("ping", "-c", "2", "-W", "1", HOTPLUG_IP).returncode != 0
    # and it plugs again (the one that stays through the migration below)
    nic, ifname = _plug(world, HOTPLUG_IP)
    assert world.guest(f"ping -c 2 -W 2 -I {ifname} {EXTERNAL_HOST}").returncode == 0


def test_live_migration_keeps_mac_address_and_guest_and_loses_few_packets(
        world: World) -> None:
    lab, vm = world.lab, world.vm
    before = world.record()
    net1 = next(n for n in before["nics"] if n["ifname"] == "net1")
    pid = lab.qemu_pid(vm)
    assert world.guest("echo same-guest > /tmp/mark").returncode == 0
    ping = subprocess.Popen(["ip", "netns", "exec", lab.external, "ping", "-n", "-i",
                             str(PING_INTERVAL), VM_IP], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)
        # what the external LAN sees from the VM's MAC: the guest's ping replies and,
        # after the switch-over, qemu's RARPs and the guest's own announcements; never
        # the target pod's netN coming up with that MAC (IPv6 DAD from ::), which would
        # move the node bridge's FDB entry to a VM that is not running there yet
        with frames_from(lab.external, "eth0", net1["mac"]) as captured:
            out = lab.ok("vm", "migrate", vm, "-n", NS)
            time.sleep(0.5)
            frames = captured()
        time.sleep(1.0)
    finally:
        ping.send_signal(signal.SIGINT)
        summary, _ = ping.communicate(timeout=10)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", summary)
    assert m, summary
    sent, received = int(m.group(1)), int(m.group(2))
    print(f"migration: {sent - received} of {sent} pings lost "
          f"(one every {PING_INTERVAL} s)")
    assert sent > 40 and sent - received <= MAX_LOST, summary
    assert RARP in frames and "0800" in frames, frames
    assert DAD not in frames, frames
    assert re.search(r"the guard dropped \d+ frames", out)
    assert "node bridge guarded" in out and "switched over" in out

    after = world.record()
    target = after["launcher"]
    assert re.fullmatch(rf"virt-launcher-{vm}-[0-9a-f]{{5}}", target)
    assert after["migrations"] == 1 and after["target_pod"] == ""
    assert not qemu_alive(pid) and qemu_alive(lab.qemu_pid(vm))
    # the same guest: its memory came along, its MACs and addresses too
    assert world.guest("cat /tmp/mark").stdout == "same-guest\n"
    guest = world.guest("ip addr show eth1; ip addr show eth0").stdout
    assert net1["mac"] in guest and f"{VM_IP}/24" in guest and "10.0.2.2/24" in guest
    assert [(n["ifname"], n["mac"], n["addresses"]) for n in after["nics"]] == \
        [(n["ifname"], n["mac"], n["addresses"]) for n in before["nics"]]
    # the source pod is gone, the target serves the VM: the node bridge learnt its port
    pods = lab.ok("pod", "get", "-n", NS)
    assert f"virt-launcher-{vm} " not in pods and target in pods
    assert f"mh-{NS}-virt-launcher-{vm}" not in host_netns()
    assert "mh-migrate-" not in _guard_tables()
    assert lab.in_external("ping", "-c", "2", "-W", "2", VM_IP).returncode == 0
    assert world.guest("ping -c 2 -W 2 10.0.2.1").returncode == 0
    # the hot-plugged NIC came along: the target pod has its netN, the guest its address
    assert lab.in_external("ping", "-c", "2", "-W", "2", HOTPLUG_IP).returncode == 0
    # what a VM on its second launcher pod can do: be deleted cleanly
    lab.ok("vm", "delete", vm, "-n", NS)
    assert target not in lab.ok("pod", "get", "-n", NS)
    assert not lab.vm_dir(vm).exists()
