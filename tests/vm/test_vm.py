"""A real VM (Debian kernel + busybox initramfs under qemu) on the lab's networks.

One VM is shared by the module (a TCG boot costs 10-30 s): NIC 0 on the pod network
(masquerade binding, the default), NIC 1 on bridge-dev with the bridge binding, NIC 2 on a
macvtap NAD, NIC 3 on a bridge NAD with host-local IPAM.
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
from typing import Any

import pytest

from support.host_state import host_netns
from support.netns import unique
from support.vm_world import (
    CONNECT_AND_READ,
    EXTERNAL_HOST,
    NS,
    SUBNET,
    VMLab,
    down,
    in_pod_listener,
    process_running,
    qemu_alive,
    skip_without_vm_tools,
    up,
)

pytestmark = pytest.mark.netns

VM_IP, VM_MACVTAP_IP, POD_IP = f"{SUBNET}.20", f"{SUBNET}.21", f"{SUBNET}.11"
MASQ_GUEST, MASQ_GATEWAY = "10.0.2.2", "10.0.2.1"


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


def _nic(shared: Shared, ifname: str) -> dict[str, Any]:
    """The VM record's NIC on pod interface `ifname`, as `vm get -o json` shows it."""
    rec = json.loads(shared.lab.ok("vm", "get", shared.vm, "-n", NS, "-o", "json"))[0]
    nic: dict[str, Any] = next(n for n in rec["nics"] if n["ifname"] == ifname)
    return nic


def _ping_from_vm(shared: Shared, target: str, extra: str = "") -> int:
    return shared.vm_exec(f"ping -c 2 -W 2 {extra} {target}").returncode


def test_run_reports_accelerator_and_bindings(shared: Shared) -> None:
    out = shared.run_output
    assert "accelerator tcg" in out or "accelerator kvm" in out
    assert "eth0 (pod) bound with masquerade binding, guest eth0" in out
    assert "address 10.0.2.2/24 by DHCP" in out
    assert "net1 (multus-test/bridge-dev) bound with bridge binding, guest eth1" in out
    assert "net2 (multus-test/mvt) bound with macvtap binding, guest eth2" in out
    assert f"vm/{shared.vm} running (booted in" in out
    table = shared.lab.ok("vm", "get", "-n", NS)
    assert table.splitlines()[0].split() == ["NAMESPACE", "NAME", "STATUS", "ACCEL", "NICS",
                                             "AGE"]
    row = next(line.split() for line in table.splitlines() if shared.vm in line)
    assert row[2] == "Running"
    assert row[4] == "eth0=masquerade,net1=bridge,net2=macvtap,net3=bridge"
    again = shared.lab.mh("vm", "run", shared.vm, "-n", NS, "--networks", "bridge-dev")
    assert again.returncode == 1
    assert f'vm: VM "{shared.vm}" already exists in namespace "{NS}"' in again.stderr
    nope = shared.lab.mh("vm", "exec", "no-such-vm", "-n", NS, "--", "true")
    assert nope.returncode == 1 and 'VM "no-such-vm" not found' in nope.stderr


def test_bridge_binding_in_pod_and_macs(shared: Shared) -> None:
    nic = _nic(shared, "net1")
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
    guest = shared.vm_exec("ip addr show eth1").stdout
    assert nic["mac"] in guest and f"{VM_IP}/24" in guest
    described = shared.lab.ok("vm", "describe", shared.vm, "-n", NS)
    assert "eth1:  multus-test/bridge-dev via pod net1 (bridge binding)" in described
    assert f"Addresses: {VM_IP}/24" in described and "Pod Network Status:" in described


def test_vm_reaches_external_host_and_pod_and_is_reached(shared: Shared) -> None:
    assert _ping_from_vm(shared, EXTERNAL_HOST) == 0
    assert _ping_from_vm(shared, POD_IP) == 0
    assert shared.lab.in_external("ping", "-c", "2", "-W", "2", VM_IP).returncode == 0
    shared.lab.ok("pod", "exec", shared.pod, "-n", NS, "--", "ping", "-c", "2", "-W", "2",
                  VM_IP)


def test_macspoofchk_drops_a_changed_mac_and_restoring_it_restores(shared: Shared) -> None:
    mac = _nic(shared, "net1")["mac"]
    try:
        assert shared.vm_exec("ip link set eth1 address 02:00:5e:10:20:30").returncode == 0
        assert _ping_from_vm(shared, EXTERNAL_HOST) != 0
        assert shared.lab.in_external("ping", "-c", "2", "-W", "2", VM_IP).returncode != 0
    finally:
        shared.vm_exec(f"ip link set eth1 address {mac}")
    assert _ping_from_vm(shared, EXTERNAL_HOST) == 0
    assert shared.lab.in_external("ping", "-c", "2", "-W", "2", VM_IP).returncode == 0


def test_macvtap_nic_reaches_the_external_host(shared: Shared) -> None:
    detail = shared.in_launcher("ip", "-d", "link", "show", "net2")
    assert "macvtap mode bridge" in detail
    mac = _nic(shared, "net2")["mac"]
    assert mac in detail and mac in shared.vm_exec("ip link show eth2").stdout
    assert _ping_from_vm(shared, EXTERNAL_HOST, "-I eth2") == 0
    neigh = shared.lab.in_external("ip", "neigh", "show", VM_MACVTAP_IP).stdout
    assert mac in neigh


def test_ipam_address_of_the_pod_interface_goes_to_the_guest(shared: Shared) -> None:
    status = json.loads(json.loads(shared.lab.ok(
        "pod", "get", f"virt-launcher-{shared.vm}", "-n", NS, "-o", "json"))
        ["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
    allocated = next(s for s in status if s["interface"] == "net3")["ips"][0]
    assert allocated.startswith(f"{SUBNET}.1")
    assert "inet " not in shared.in_launcher("ip", "-4", "addr", "show", "net3")
    assert f"{allocated}/24" in shared.vm_exec("ip addr show eth3").stdout
    assert _ping_from_vm(shared, EXTERNAL_HOST, "-I eth3") == 0
    assert shared.lab.in_external("ping", "-c", "2", "-W", "2", allocated).returncode == 0


def _pod_ip(shared: Shared, pod: str) -> str:
    body = json.loads(shared.lab.ok("pod", "get", pod, "-n", NS, "-o", "json"))
    ip: str = body["status"]["podIP"]
    return ip


def _wait_guest(shared: Shared, condition: str) -> bool:
    """`condition` (a guest shell test) becomes true within about 5 s."""
    script = f"for i in $(seq 25); do {condition} && exit 0; sleep 0.2; done; exit 1"
    return shared.vm_exec(script).returncode == 0


def test_pod_network_nic_gets_10_0_2_2_by_dhcp_from_the_masquerade_binding(
        shared: Shared) -> None:
    nic = _nic(shared, "eth0")
    assert (nic["binding"], nic["network"], nic["guest_ifname"]) == ("masquerade", "pod",
                                                                     "eth0")
    guest = shared.vm_exec("ip addr show eth0; ip route").stdout
    assert nic["mac"] in guest and f"{MASQ_GUEST}/24" in guest
    assert f"default via {MASQ_GATEWAY} dev eth0" in guest
    # inside the launcher pod: the gateway on k6t-eth0, eth0 keeps the pod's address
    assert f"{MASQ_GATEWAY}/24" in shared.in_launcher("ip", "-4", "addr", "show", "k6t-eth0")
    launcher_ip = _pod_ip(shared, f"virt-launcher-{shared.vm}")
    assert launcher_ip in shared.in_launcher("ip", "-4", "addr", "show", "eth0")
    assert "tap-eth0" in shared.in_launcher("ip", "-o", "link", "show", "master", "k6t-eth0")
    leases = (shared.lab.vm_dir(shared.vm) / "dnsmasq.log").read_text()
    assert f"DHCPACK(k6t-eth0) {MASQ_GUEST} {nic['mac']}" in leases


def test_guest_reaches_a_pod_through_nat_and_the_pod_reaches_a_guest_port(
        shared: Shared) -> None:
    peer_ip, launcher_ip = _pod_ip(shared, shared.pod), _pod_ip(
        shared, f"virt-launcher-{shared.vm}")
    assert _ping_from_vm(shared, peer_ip) == 0
    # outbound: the peer sees the launcher pod's address, never the guest's 10.0.2.2
    with in_pod_listener(shared.lab, shared.pod, 9090) as accepted:
        assert shared.vm_exec(f"echo hi | nc -w 3 {peer_ip} 9090").returncode == 0
        assert accepted() == launcher_ip
    # inbound: a connection to the pod's address and any port lands in the guest
    assert shared.vm_exec("(nc -ll -p 8080 -e echo guest-says-hi </dev/null >/dev/null "
                          "2>&1 &); sleep 0.3").returncode == 0
    try:
        reply = shared.lab.ok("pod", "exec", shared.pod, "-n", NS, "--", sys.executable,
                              "-c", CONNECT_AND_READ, launcher_ip, "8080")
        assert reply.strip() == "guest-says-hi"
    finally:
        shared.vm_exec("killall nc")


def test_link_state_down_stops_traffic_and_up_resumes_it(shared: Shared) -> None:
    lab, vm = shared.lab, shared.vm
    try:
        out = lab.ok("vm", "link", vm, "net1", "down", "-n", NS)
        assert f"vm/{vm}: eth1 (net1, {NS}/bridge-dev) link down" in out
        assert _wait_guest(shared, '[ "$(cat /sys/class/net/eth1/carrier)" = 0 ]')
        assert _ping_from_vm(shared, EXTERNAL_HOST, "-I eth1") != 0
        assert lab.in_external("ping", "-c", "2", "-W", "2", VM_IP).returncode != 0
        assert _nic(shared, "net1")["link"] == "down"
        assert "Link:      down" in lab.ok("vm", "describe", vm, "-n", NS)
        # the other NICs keep their link
        assert _ping_from_vm(shared, EXTERNAL_HOST, "-I eth3") == 0
    finally:
        lab.ok("vm", "link", vm, "eth1", "up", "-n", NS)  # by the guest's name this time
    assert _wait_guest(shared, '[ "$(cat /sys/class/net/eth1/carrier)" = 1 ]')
    assert _ping_from_vm(shared, EXTERNAL_HOST, "-I eth1") == 0
    assert lab.in_external("ping", "-c", "2", "-W", "2", VM_IP).returncode == 0
    assert _nic(shared, "net1")["link"] == "up"


def test_link_state_refuses_an_unknown_nic_and_state(shared: Shared) -> None:
    nonic = shared.lab.mh("vm", "link", shared.vm, "net9", "down", "-n", NS)
    assert nonic.returncode == 1 and f"VM \"{shared.vm}\" has no NIC 'net9'" in nonic.stderr
    bad = shared.lab.mh("vm", "link", shared.vm, "net1", "sideways", "-n", NS)
    assert bad.returncode == 2 and "sideways" in bad.stderr
    badrun = shared.lab.mh("vm", "run", unique("vml"), "-n", NS, "--link-state", "net1=off")
    assert badrun.returncode == 1 and "expected NIC=up|down" in badrun.stderr
    badport = shared.lab.mh("vm", "run", unique("vml"), "-n", NS, "--port", "99999")
    assert badport.returncode == 1 and "invalid port '99999'" in badport.stderr
    assert "virt-launcher-vml" not in shared.lab.ok("pod", "get", "-n", NS)


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
    # the DHCP server still runs in the pod: deleting the pod alone would strand it
    dhcp_pid = _nic(shared, "eth0")["dhcp_pid"]
    assert dhcp_pid and b"dnsmasq" in Path(f"/proc/{dhcp_pid}/cmdline").read_bytes()
    refused = lab.mh("pod", "delete", f"virt-launcher-{vm}", "-n", NS)
    assert refused.returncode == 1 and f'VM "{vm}"' in refused.stderr
    ports_before = lab.bridge_ports()
    out = lab.ok("vm", "delete", vm, "-n", NS)
    assert f'vm "{vm}" deleted' in out and "networks detached" in out
    assert "DHCP server of eth0 stopped" in out
    assert not process_running(dhcp_pid)
    _nothing_left(lab, vm, pid)
    # the veths of eth0/net1 and nothing else of the VM are gone from the host
    assert lab.bridge_ports() < ports_before
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
    ports_before = lab.bridge_ports()
    out = lab.ok("vm", "run", vm, "-n", NS, "--networks", "bridge-dev",
                 "--address", f"net1={SUBNET}.31/24", "--link-state", "net1=down",
                 "--port", "8080")
    assert f"vm/{vm}: eth1 link down" in out
    pid = lab.qemu_pid(vm)
    assert qemu_alive(pid)
    # started with its link down: the guest never sees carrier on eth1
    carrier = lab.mh("vm", "exec", vm, "-n", NS, "--", "cat", "/sys/class/net/eth1/carrier")
    assert carrier.stdout == "0\n"
    # --port: only the listed port of the pod's address reaches the guest
    launcher_ip = _pod_ip(shared, f"virt-launcher-{vm}")
    for port in (8080, 8081):
        listen = (f"(nc -ll -p {port} -e echo port-{port} </dev/null >/dev/null 2>&1 &); "
                  "sleep 0.3")
        assert lab.mh("vm", "exec", vm, "-n", NS, "--", "sh", "-c", listen).returncode == 0
    reached = lab.mh("pod", "exec", shared.pod, "-n", NS, "--", sys.executable, "-c",
                     CONNECT_AND_READ, launcher_ip, "8080")
    assert reached.stdout.strip() == "port-8080"
    # 8081 is not forwarded: the launcher pod itself answers, with a reset
    refused = lab.mh("pod", "exec", shared.pod, "-n", NS, "--", sys.executable, "-c",
                     CONNECT_AND_READ, launcher_ip, "8081")
    assert refused.returncode != 0 and "ConnectionRefusedError" in refused.stderr
    out = lab.ok("pod", "delete", f"virt-launcher-{vm}", "-n", NS, "--force")
    assert f"vm/{vm}: qemu stopped" in out and f'vm "{vm}" deleted' in out
    _nothing_left(lab, vm, pid)
    assert lab.bridge_ports() == ports_before


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
