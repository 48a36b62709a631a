"""Live migration of a lab VM (`multihome vm migrate`) with a real qemu on both sides.

One VM, pod network (masquerade) + bridge-dev (bridge binding, static address). The
failure path runs first (no target qemu is ever started), then one real migration
under a continuous ping from the external host.
"""

from __future__ import annotations

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

VM_IP = f"{SUBNET}.40"
PING_INTERVAL = 0.05
# packets the switch-over may cost at one ping every 50 ms (about 0.5 s of silence;
# measured: 0-2)
MAX_LOST = 10
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
    # what a VM on its second launcher pod can do: be deleted cleanly
    lab.ok("vm", "delete", vm, "-n", NS)
    assert target not in lab.ok("pod", "get", "-n", NS)
    assert not lab.vm_dir(vm).exists()
