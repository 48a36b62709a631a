"""A VM keeps its address through its IPAMClaim: across `vm stop`/`vm start` and `vm migrate`.

One VM (real qemu), pod network + `sticky`: a bridge NAD with whereabouts IPAM and
`"allowPersistentIPs": true`. In order: bad states, a stop (the address stays the
claim's: another pod does not get it), a start (the same address, the guest reaches the
external host with it), a migration (the target's ADD gets it while the source holds
it; the source's DEL leaves it; a hot-plugged NIC's claim too), then `vm delete` of the
stopped VM (the claims go).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from support.cli_lab import MULTIHOME
from support.host_state import host_netns
from support.netns import unique
from support.vm_world import (
    EXTERNAL_HOST,
    NS,
    SUBNET,
    VMLab,
    down,
    qemu_alive,
    skip_without_vm_tools,
    up,
)

pytestmark = pytest.mark.netns

NAD = "sticky"
STICKY = {"cniVersion": "0.3.1", "name": NAD, "type": "cnv-bridge", "vlan": 0,
          "allowPersistentIPs": True,
          "ipam": {"type": "whereabouts", "range": f"{SUBNET}.0/24",
                   "range_start": f"{SUBNET}.150", "range_end": f"{SUBNET}.159"}}


class World:
    def __init__(self, lab: VMLab, vm: str) -> None:
        self.lab, self.vm = lab, vm
        self.claim = f"{vm}.{NAD}"
        self.address = ""  # the VM's net1 address (CIDR) as first allocated
        self.plugged = ""  # the hot-plugged net2's

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = json.loads(
            self.lab.ok("vm", "get", self.vm, "-n", NS, "-o", "json"))[0]
        return rec

    def status_row(self) -> str:
        return next(line for line in self.lab.ok("vm", "get", "-n", NS).splitlines()
                    if f" {self.vm} " in f" {line} ")

    def claim_status(self) -> dict[str, Any]:
        body = json.loads(self.lab.ok("get", "ipamclaims", self.claim, "-n", NS, "-o",
                                      "json"))
        status: dict[str, Any] = body.get("status", {})
        return status

    def guest(self, script: str) -> subprocess.CompletedProcess[str]:
        return self.lab.mh("vm", "exec", self.vm, "-n", NS, "--", "sh", "-c", script)

    def sticky_nic(self) -> dict[str, Any]:
        nic: dict[str, Any] = next(n for n in self.record()["nics"]
                                   if n["network"] == f"{NS}/{NAD}")
        return nic


def pod_address(lab: VMLab, pod: str, ifname: str = "net1") -> str:
    """The address of `ifname` in the pod's network-status (ip, no prefix)."""
    body = json.loads(lab.ok("pod", "get", pod, "-n", NS, "-o", "json"))
    status = json.loads(body["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
    ip: str = next(s for s in status if s.get("interface") == ifname)["ips"][0]
    return ip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    skip_without_vm_tools()
    lab = up(tmp_path_factory.mktemp("vmclaim"))
    try:
        lab.apply_nad(NAD, {**STICKY, "bridge": lab.dev_bridge})
        vm = unique("vmc")
        lab.ok("vm", "run", vm, "-n", NS, "--networks", NAD)
        yield World(lab, vm)
    finally:
        down(lab)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [line] = proc.stderr.splitlines()
    return line


def claim_allocations(lab: VMLab) -> list[str]:
    """The owners (ids) of the allocations in the lab's whereabouts pools."""
    pools = json.loads(lab.ok("get", "ippools", "-n", "kube-system", "-o", "json"))
    items = pools.get("items", pools) if isinstance(pools, dict) else pools
    return sorted(a["id"] for p in items for a in p["spec"].get("allocations", {}).values())


def test_a_vm_run_that_fails_leaves_no_claim_and_no_address(world: World) -> None:
    lab, vm = world.lab, unique("vmf")
    before = claim_allocations(lab)
    proc = lab.mh("vm", "run", vm, "-n", NS, "--networks", NAD, "--no-pod-network",
                  MULTIHOME_VM_BOOT_TIMEOUT="1")
    line = one_line_error(proc)
    assert "boot: the guest did not come up in time" in line
    assert lab.mh("get", "ipamclaims", f"{vm}.{NAD}", "-n", NS).returncode == 1
    assert claim_allocations(lab) == before
    assert not lab.vm_dir(vm).exists()


def test_a_stop_during_the_boot_waits_for_it_and_stops_the_vm(world: World) -> None:
    lab, vm = world.lab, unique("vmb")
    run = subprocess.Popen([MULTIHOME, "--store", str(lab.tmp / "s.db"), "vm", "run", vm,
                            "-n", NS, "--networks", NAD, "--no-pod-network"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=lab.env())
    try:
        record = lab.vm_dir(vm) / "vm.json"
        for _ in range(300):  # the record is written before qemu starts
            if record.exists() or run.poll() is not None:
                break
            time.sleep(0.1)
        assert record.exists(), run.communicate(timeout=10)
        stopped = lab.ok("vm", "stop", vm, "-n", NS)
        out, err = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, err
    assert f"vm/{vm} running" in out and f'vm "{vm}" stopped' in stopped
    assert json.loads(lab.ok("vm", "get", vm, "-n", NS, "-o", "json"))[0]["stopped"]
    lab.ok("vm", "delete", vm, "-n", NS)
    assert lab.mh("get", "ipamclaims", f"{vm}.{NAD}", "-n", NS).returncode == 1


def test_the_running_vm_holds_its_claims_address(world: World) -> None:
    lab = world.lab
    ip = pod_address(lab, f"virt-launcher-{world.vm}")
    assert ip.startswith(f"{SUBNET}.15")
    world.address = f"{ip}/24"
    assert world.claim_status()["ips"] == [world.address]
    assert world.claim_status()["ownerPod"] == {"name": f"virt-launcher-{world.vm}"}
    assert world.address in world.guest("ip addr show eth1").stdout


def test_bad_states_and_unknown_vms_are_one_line_errors(world: World) -> None:
    lab = world.lab
    line = one_line_error(lab.mh("vm", "start", world.vm, "-n", NS))
    assert f'VM "{world.vm}" is already running' in line
    for verb in ("stop", "start"):
        line = one_line_error(lab.mh("vm", verb, "no-such-vm", "-n", NS))
        assert f'VM "no-such-vm" not found in namespace "{NS}"' in line
    assert "Running" in world.status_row()


def test_stop_ends_qemu_and_the_pod_but_keeps_the_vm_and_its_claim(world: World) -> None:
    lab, vm = world.lab, world.vm
    pid = lab.qemu_pid(vm)
    mac = world.sticky_nic()["mac"]
    out = lab.ok("vm", "stop", vm, "-n", NS)
    assert f'vm "{vm}" stopped' in out
    assert not qemu_alive(pid)
    assert "Stopped" in world.status_row()
    assert f"virt-launcher-{vm}" not in lab.ok("pod", "get", "-n", NS)
    assert not [n for n in host_netns() if n.startswith(f"mh-{NS}-virt-launcher-{vm}")]
    assert world.sticky_nic()["mac"] == mac  # kept for the start
    assert world.claim_status()["ips"] == [world.address]
    line = one_line_error(lab.mh("vm", "stop", vm, "-n", NS))
    assert f'VM "{vm}" is already stopped' in line
    for argv in (("exec", vm, "-n", NS, "--", "true"), ("console", vm, "-n", NS),
                 ("migrate", vm, "-n", NS), ("link", vm, "net1", "down", "-n", NS)):
        line = one_line_error(lab.mh("vm", *argv))
        assert f'VM "{vm}" is stopped' in line and f"multihome vm start {vm}" in line


def test_a_start_that_fails_leaves_the_vm_stopped_as_it_was(world: World) -> None:
    lab, vm = world.lab, world.vm
    before = world.record()
    lab.ok("delete", "net-attach-def", NAD, "-n", NS)
    try:
        line = one_line_error(lab.mh("vm", "start", vm, "-n", NS))
    finally:
        lab.apply_nad(NAD, {**STICKY, "bridge": lab.dev_bridge})
    assert line.startswith(f"Error: pod: launcher pod {NS}/virt-launcher-{vm} could not "
                           "be started")
    assert f"NAD {NS}/{NAD} not found" in line
    assert "Stopped" in world.status_row()
    assert world.record()["nics"] == before["nics"] and world.record()["stopped"]
    assert f"virt-launcher-{vm}" not in lab.ok("pod", "get", "-n", NS)
    assert world.claim_status()["ips"] == [world.address]


def test_a_stopped_vms_address_is_not_given_to_another_pod(world: World) -> None:
    lab, pod = world.lab, unique("other")
    lab.ok("pod", "run", pod, "-n", NS, "--networks", NAD)
    try:
        other = pod_address(lab, pod)
        assert other.startswith(f"{SUBNET}.15")
        assert f"{other}/24" != world.address
    finally:
        lab.ok("pod", "delete", pod, "-n", NS)


def test_start_boots_a_new_launcher_with_the_same_address(world: World) -> None:
    lab, vm = world.lab, world.vm
    mac = world.sticky_nic()["mac"]
    pod_mac = world.record()["nics"][0]["mac"]
    out = lab.ok("vm", "start", vm, "-n", NS)
    assert f"vm/{vm} running" in out
    assert "Running" in world.status_row()
    assert f"{pod_address(lab, f'virt-launcher-{vm}')}/24" == world.address
    assert world.claim_status()["ips"] == [world.address]
    assert world.sticky_nic()["mac"] == mac
    assert world.record()["nics"][0]["mac"] == pod_mac  # the pod network's NIC too
    assert world.address in world.guest("ip addr show eth1").stdout
    assert world.guest(f"ping -c 2 -W 2 -I eth1 {EXTERNAL_HOST}").returncode == 0
    ip = world.address.partition("/")[0]
    assert lab.in_external("ping", "-c", "2", "-W", "2", ip).returncode == 0


def test_a_hot_plugged_nic_on_the_network_gets_a_claim_of_its_own(world: World) -> None:
    lab, vm = world.lab, world.vm
    out = lab.ok("vm", "add-nic", vm, NAD, "-n", NS)
    assert "net2" in out
    ip = pod_address(lab, world.record()["launcher"] or f"virt-launcher-{vm}", "net2")
    world.plugged = f"{ip}/24"
    assert world.plugged != world.address
    status = json.loads(lab.ok("get", "ipamclaims", f"{world.claim}.net2", "-n", NS, "-o",
                               "json"))["status"]
    assert status["ips"] == [world.plugged]
    assert world.claim_status()["ips"] == [world.address]


def test_migration_keeps_the_claims_address(world: World) -> None:
    lab, vm = world.lab, world.vm
    source = world.record()["launcher"] or f"virt-launcher-{vm}"
    out = lab.ok("vm", "migrate", vm, "-n", NS)
    assert f"vm/{vm} migrated to virt-launcher-{vm}-" in out
    target = world.record()["launcher"]
    assert target != source
    # the target's ADD named the claims and got their addresses while the source held them
    assert f"{pod_address(lab, target)}/24" == world.address
    assert f"{pod_address(lab, target, 'net2')}/24" == world.plugged
    # the source's DEL left it: the claim is unchanged and no other pod gets it
    assert world.claim_status()["ips"] == [world.address]
    assert world.claim_status()["ownerPod"] == {"name": target}
    # one allocation per claim: the target's ADD took no second address, the source's
    # DEL freed none
    assert claim_allocations(lab) == [f"ipamclaim/{NS}/{world.claim}",
                                      f"ipamclaim/{NS}/{world.claim}.net2"]
    pod = unique("other")
    lab.ok("pod", "run", pod, "-n", NS, "--networks", NAD)
    try:
        assert f"{pod_address(lab, pod)}/24" not in (world.address, world.plugged)
    finally:
        lab.ok("pod", "delete", pod, "-n", NS)
    ip = world.address.partition("/")[0]
    assert lab.in_external("ping", "-c", "2", "-W", "2", ip).returncode == 0


def test_restart_after_a_migration_keeps_every_claims_address(world: World) -> None:
    lab, vm = world.lab, world.vm
    migrated = world.record()["launcher"]
    out = lab.ok("vm", "restart", vm, "-n", NS)
    assert f'vm "{vm}" stopped' in out and f"vm/{vm} running" in out
    assert migrated not in lab.ok("pod", "get", "-n", NS)
    launcher = f"virt-launcher-{vm}"
    assert world.record()["launcher"] in ("", launcher)
    assert f"{pod_address(lab, launcher)}/24" == world.address
    assert f"{pod_address(lab, launcher, 'net2')}/24" == world.plugged
    assert world.claim_status()["ownerPod"] == {"name": launcher}
    assert world.address in world.guest("ip addr show eth1").stdout


def test_delete_of_a_stopped_vm_deletes_its_claim_and_frees_the_address(
        world: World) -> None:
    lab, vm = world.lab, world.vm
    lab.ok("vm", "stop", vm, "-n", NS)
    out = lab.ok("vm", "delete", vm, "-n", NS)
    assert f'vm "{vm}" deleted' in out and "IPAMClaims deleted" in out
    for claim in (world.claim, f"{world.claim}.net2"):
        assert lab.mh("get", "ipamclaims", claim, "-n", NS).returncode == 1
    assert not lab.vm_dir(vm).exists()
    # the address is free again: the next pod (lowest free address first) gets it
    pod = unique("after")
    lab.ok("pod", "run", pod, "-n", NS, "--networks", NAD)
    try:
        assert f"{pod_address(lab, pod)}/24" == world.address
    finally:
        lab.ok("pod", "delete", pod, "-n", NS)
