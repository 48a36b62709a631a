"""A real VM (Debian kernel + busybox initramfs under qemu) on the lab's networks.

One VM is shared by the module (a TCG boot costs 10-30 s): NIC 1 on bridge-dev with the
bridge binding, NIC 2 on a macvtap NAD, NIC 3 on a bridge NAD with host-local IPAM.
The last test of it kills its qemu and checks that `vm delete` still removes everything.
Failure paths use VMs that never finish booting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.host_state import host_netns, link_names
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

VM_IP, VM_MACVTAP_IP, POD_IP = f"{SUBNET}.20", f"{SUBNET}.21", f"{SUBNET}.11"


class Shared:
    def __init__(self, lab: VMLab, vm: str, pod: str, run_output: str) -> None:
        self.lab, self.vm, self.pod, self.run_output = lab, vm, pod, run_output

    @property
    def launcher_netns(self) -> str:
        return f"mh-{NS}-virt-launcher-{self.vm}"

    def vm_exec(self, script: str) -> subprocess.CompletedProcess[str]:
        return self.lab.mh("vm", "exec", self.vm, "-n", NS, "--", "sh", "-c", script)

    def in_launcher(self, *argv: str) -> str:
        return subprocess.run(["ip", "netns", "exec", self.launcher_netns, *argv],
                              capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    skip_without_vm_tools()
    lab = up(tmp_path_factory.mktemp("vmlab"))
    try:
        lab.apply_nad("bridge-dev", {"cniVersion": "0.3.1", "name": "bridge-dev",
                                     "type": "cnv-bridge", "bridge": lab.dev_bridge,
                                     "macspoofchk": True, "vlan": 0})
        lab.apply_nad("mvt", {"cniVersion": "0.3.1", "name": "mvt", "type": "macvtap",
                              "master": lab.dev_bridge, "mode": "bridge"})
        lab.apply_nad("ipam-dev", {"cniVersion": "0.3.1", "name": "ipam-dev",
                                   "type": "cnv-bridge", "bridge": lab.dev_bridge,
                                   "ipam": {"type": "host-local", "dataDir": str(lab.tmp / "ipam"),
                                            "ranges": [[{"subnet": f"{SUBNET}.0/24",
                                                         "rangeStart": f"{SUBNET}.100",
                                                         "rangeEnd": f"{SUBNET}.110"}]]}})
        pod, vm = unique("peer"), unique("vm")
        lab.ok("pod", "run", pod, "-n", NS, "--networks", "bridge-dev",
               "--address", f"net1={POD_IP}/24")
        out = lab.ok("vm", "run", vm, "-n", NS, "--networks", "bridge-dev,mvt,ipam-dev",
                     "--address", f"net1={VM_IP}/24", "--address", f"net2={VM_MACVTAP_IP}/24")
        yield Shared(lab, vm, pod, out)
    finally:
        down(lab)


def _ping_from_vm(shared: Shared, target: str, extra: str = "") -> int:
    return shared.vm_exec(f"ping -c 2 -W 2 {extra} {target}").returncode


def test_run_reports_accelerator_and_bindings(shared: Shared) -> None:
    out = shared.run_output
    assert "accelerator tcg" in out or "accelerator kvm" in out
    assert "net1 (multus-test/bridge-dev) bound with bridge binding, guest eth0" in out
    assert "net2 (multus-test/mvt) bound with macvtap binding, guest eth1" in out
    assert f"vm/{shared.vm} running (booted in" in out
    table = shared.lab.ok("vm", "get", "-n", NS)
    assert table.splitlines()[0].split() == ["NAMESPACE", "NAME", "STATUS", "ACCEL", "NICS",
                                             "AGE"]
    row = next(line.split() for line in table.splitlines() if shared.vm in line)
    assert row[2] == "Running" and row[4] == "net1=bridge,net2=macvtap,net3=bridge"
    again = shared.lab.mh("vm", "run", shared.vm, "-n", NS, "--networks", "bridge-dev")
    assert again.returncode == 1
    assert f'vm: VM "{shared.vm}" already exists in namespace "{NS}"' in again.stderr
    nope = shared.lab.mh("vm", "exec", "no-such-vm", "-n", NS, "--", "true")
    assert nope.returncode == 1 and 'VM "no-such-vm" not found' in nope.stderr


def test_bridge_binding_in_pod_and_macs(shared: Shared) -> None:
    rec = json.loads(shared.lab.ok("vm", "get", shared.vm, "-n", NS, "-o", "json"))[0]
    nic = rec["nics"][0]
    status = json.loads(json.loads(shared.lab.ok(
        "pod", "get", f"virt-launcher-{shared.vm}", "-n", NS, "-o", "json"))
        ["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
    net1_status = next(s for s in status if s["interface"] == "net1")
    # the VM NIC has the MAC the CNI plugin gave net1 (the one macspoofchk allows)
    assert nic["mac"] == net1_status["mac"]
    links = {line.split()[0].split("@")[0]: line.split()
             for line in shared.in_launcher("ip", "-br", "link").splitlines()}
    assert {"net1", "k6t-net1", "tap-net1", "net2"} <= set(links)
    assert links["net1"][2] == nic["pod_mac"] != nic["mac"]
    ports = shared.in_launcher("ip", "-o", "link", "show", "master", "k6t-net1")
    assert "net1@" in ports and "tap-net1" in ports
    assert "inet " not in shared.in_launcher("ip", "-4", "addr", "show", "net1")
    guest = shared.vm_exec("ip addr show eth0").stdout
    assert nic["mac"] in guest and f"{VM_IP}/24" in guest
    described = shared.lab.ok("vm", "describe", shared.vm, "-n", NS)
    assert "eth0:  multus-test/bridge-dev via pod net1 (bridge binding)" in described
    assert f"Addresses: {VM_IP}/24" in described and "Pod Network Status:" in described


def test_vm_reaches_external_host_and_pod_and_is_reached(shared: Shared) -> None:
    assert _ping_from_vm(shared, EXTERNAL_HOST) == 0
    assert _ping_from_vm(shared, POD_IP) == 0
    assert shared.lab.in_external("ping", "-c", "2", "-W", "2", VM_IP).returncode == 0
    shared.lab.ok("pod", "exec", shared.pod, "-n", NS, "--", "ping", "-c", "2", "-W", "2",
                  VM_IP)


def test_macspoofchk_drops_a_changed_mac_and_restoring_it_restores(shared: Shared) -> None:
    rec = json.loads(shared.lab.ok("vm", "get", shared.vm, "-n", NS, "-o", "json"))[0]
    mac = rec["nics"][0]["mac"]
    try:
        assert shared.vm_exec("ip link set eth0 address 02:00:5e:10:20:30").returncode == 0
        assert _ping_from_vm(shared, EXTERNAL_HOST) != 0
        assert shared.lab.in_external("ping", "-c", "2", "-W", "2", VM_IP).returncode != 0
    finally:
        shared.vm_exec(f"ip link set eth0 address {mac}")
    assert _ping_from_vm(shared, EXTERNAL_HOST) == 0
    assert shared.lab.in_external("ping", "-c", "2", "-W", "2", VM_IP).returncode == 0


def test_macvtap_nic_reaches_the_external_host(shared: Shared) -> None:
    detail = shared.in_launcher("ip", "-d", "link", "show", "net2")
    assert "macvtap mode bridge" in detail
    rec = json.loads(shared.lab.ok("vm", "get", shared.vm, "-n", NS, "-o", "json"))[0]
    mac = rec["nics"][1]["mac"]
    assert mac in detail and mac in shared.vm_exec("ip link show eth1").stdout
    assert _ping_from_vm(shared, EXTERNAL_HOST, "-I eth1") == 0
    neigh = shared.lab.in_external("ip", "neigh", "show", VM_MACVTAP_IP).stdout
    assert mac in neigh


def test_ipam_address_of_the_pod_interface_goes_to_the_guest(shared: Shared) -> None:
    status = json.loads(json.loads(shared.lab.ok(
        "pod", "get", f"virt-launcher-{shared.vm}", "-n", NS, "-o", "json"))
        ["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
    allocated = next(s for s in status if s["interface"] == "net3")["ips"][0]
    assert allocated.startswith(f"{SUBNET}.1")
    assert "inet " not in shared.in_launcher("ip", "-4", "addr", "show", "net3")
    assert f"{allocated}/24" in shared.vm_exec("ip addr show eth2").stdout
    assert _ping_from_vm(shared, EXTERNAL_HOST, "-I eth2") == 0
    assert shared.lab.in_external("ping", "-c", "2", "-W", "2", allocated).returncode == 0


def test_exec_keeps_stdout_stderr_apart_and_passes_the_exit_code(shared: Shared) -> None:
    failed = shared.vm_exec("echo out; echo err >&2; exit 3")
    assert (failed.stdout, failed.stderr, failed.returncode) == ("out\n", "err\n", 3)
    binary = shared.vm_exec("printf '\\001MHEND x 0\\n' >&2; printf 'no newline'")
    assert binary.returncode == 0 and binary.stdout == "no newline"
    assert binary.stderr.endswith("MHEND x 0\n")


def test_console(shared: Shared) -> None:
    proc = subprocess.run(
        [*_mh_argv(shared.lab), "vm", "console", shared.vm, "-n", NS],
        input="echo console-$((6*7))\n", capture_output=True, text=True,
        env=shared.lab.env(), timeout=30)
    assert proc.returncode == 0 and "console-42" in proc.stdout


def _mh_argv(lab: VMLab) -> list[str]:
    from support.cli_lab import MULTIHOME

    return [MULTIHOME, "--store", str(lab.tmp / "s.db")]


def _nothing_left(lab: VMLab, vm: str, pid: int | None) -> None:
    assert not qemu_alive(pid)
    assert f"mh-{NS}-virt-launcher-{vm}" not in host_netns()
    assert not lab.vm_dir(vm).exists()
    pods = lab.ok("pod", "get", "-n", NS)
    assert f"virt-launcher-{vm}" not in pods
    assert vm not in lab.mh("vm", "get", "-A").stdout


def test_launcher_pod_delete_is_refused_while_the_vm_runs(shared: Shared) -> None:
    lab, pod = shared.lab, f"virt-launcher-{shared.vm}"
    pid = lab.qemu_pid(shared.vm)
    for argv in (("pod", "delete", pod, "-n", NS), ("delete", "pod", pod, "-n", NS)):
        refused = lab.mh(*argv)
        assert refused.returncode == 1
        [line] = refused.stderr.splitlines()
        assert f'running VM "{shared.vm}"' in line
        assert f'"multihome vm delete {shared.vm} -n {NS}"' in line and "--force" in line
    assert qemu_alive(pid) and shared.launcher_netns in host_netns()
    assert pod in lab.ok("pod", "get", "-n", NS)
    assert shared.vm_exec("echo still-here").stdout == "still-here\n"


def test_killed_qemu_then_delete_removes_everything(shared: Shared) -> None:
    lab, vm = shared.lab, shared.vm
    pid = lab.qemu_pid(vm)
    assert qemu_alive(pid)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        if not qemu_alive(pid):
            break
        time.sleep(0.1)
    row = next(line for line in lab.ok("vm", "get", "-n", NS).splitlines() if vm in line)
    assert "Stopped" in row
    links_before = link_names()
    out = lab.ok("vm", "delete", vm, "-n", NS)
    assert f'vm "{vm}" deleted' in out and "networks detached" in out
    _nothing_left(lab, vm, pid)
    # the veths of eth0/net1 and nothing else of the VM are gone from the host
    assert not (link_names() - links_before)
    gone = lab.mh("vm", "delete", vm, "-n", NS)
    assert gone.returncode == 1 and f'VM "{vm}" not found in namespace "{NS}"' in gone.stderr


def test_vm_that_never_comes_up_is_removed_and_the_step_named(shared: Shared) -> None:
    lab, vm = shared.lab, unique("vmt")
    proc = lab.mh("vm", "run", vm, "-n", NS, "--networks", "bridge-dev",
                  "--address", f"net1={SUBNET}.30/24", MULTIHOME_VM_BOOT_TIMEOUT="2")
    assert proc.returncode == 1
    assert "boot: the guest did not come up in time" in proc.stderr
    assert "removing it again" in proc.stdout
    _nothing_left(lab, vm, None)


def test_forced_delete_of_the_launcher_pod_deletes_the_vm(shared: Shared) -> None:
    lab, vm = shared.lab, unique("vmf")
    links_before = link_names()
    lab.ok("vm", "run", vm, "-n", NS, "--networks", "bridge-dev",
           "--address", f"net1={SUBNET}.31/24")
    pid = lab.qemu_pid(vm)
    assert qemu_alive(pid)
    out = lab.ok("pod", "delete", f"virt-launcher-{vm}", "-n", NS, "--force")
    assert f"vm/{vm}: qemu stopped" in out and f'vm "{vm}" deleted' in out
    _nothing_left(lab, vm, pid)
    assert not (link_names() - links_before)


def test_launcher_pod_force_deleted_during_boot(shared: Shared) -> None:
    lab, vm = shared.lab, unique("vmd")
    proc = subprocess.Popen(
        [*_mh_argv(lab), "vm", "run", vm, "-n", NS, "--networks", "bridge-dev"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=lab.env())
    try:
        pidfile = lab.vm_dir(vm) / "qemu.pid"
        deadline = time.monotonic() + 60
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        pid = lab.qemu_pid(vm)
        assert lab.mh("pod", "delete", f"virt-launcher-{vm}", "-n", NS).returncode == 1
        lab.ok("pod", "delete", f"virt-launcher-{vm}", "-n", NS, "--force")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out + err
    assert "boot: " in err and "removing it again" in out
    _nothing_left(lab, vm, pid)


def test_failures_before_boot_name_their_step(shared: Shared, tmp_path: Path) -> None:
    lab = shared.lab
    nokernel = lab.mh("vm", "run", unique("vmk"), "-n", NS, "--networks", "bridge-dev",
                      MULTIHOME_VM_KERNEL=str(tmp_path / "vmlinuz-none"))
    assert nokernel.returncode == 1
    assert "guest: guest kernel" in nokernel.stderr and "does not exist" in nokernel.stderr
    nonad = lab.mh("vm", "run", unique("vmn"), "-n", NS, "--networks", "no-such-nad")
    assert nonad.returncode == 1
    assert "pod: launcher pod" in nonad.stderr and "no-such-nad not found" in nonad.stderr
    assert "virt-launcher" not in lab.ok("pod", "get", "-n", NS)


def test_lab_down_stops_the_qemu_of_every_vm(tmp_path: Path) -> None:
    """`lab down` deletes VMs before pods: a qemu would otherwise outlive its pod.

    The "qemu" here is a sleeping process carrying the VM's pid-file path on its command
    line (how the lab recognises its qemu), so no boot is needed.
    """
    skip_without_vm_tools()
    lab = up(tmp_path)
    proc = None
    try:
        vdir = lab.vm_dir("vmz")
        vdir.mkdir(parents=True)
        (vdir / "vm.json").write_text(json.dumps({"name": "vmz", "namespace": NS,
                                                  "memory": 64, "networks": ""}))
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                                 "-pidfile", str(vdir / "qemu.pid")])
        (vdir / "qemu.pid").write_text(f"{proc.pid}\n")
        assert "Running" in lab.ok("vm", "get", "-n", NS)
        out = lab.ok("lab", "down")
        assert 'vm "vmz" deleted' in out and "vm/vmz: qemu stopped" in out
        assert proc.wait(timeout=10) != 0 and not vdir.exists()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        down(lab)
