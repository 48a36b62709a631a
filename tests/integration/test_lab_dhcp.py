"""`multihome lab up --dhcp`: pods on dev-bridge get their address from the DHCP server
on the lab's external LAN; the lab's daemon holds the leases; `lab down` stops both."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli_lab import CLILab, lab_down, lab_up, new_lab
from support.dhcp_server import lease_file_lines

pytestmark = pytest.mark.netns


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[CLILab]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create namespaces and bridges")
    if not os.access("/usr/sbin/dnsmasq", os.X_OK):
        pytest.skip("needs /usr/sbin/dnsmasq (Debian package dnsmasq-base)")
    lab = new_lab(CLILab, tmp_path, "mq")
    try:
        out = lab_up(lab, "10.66.0.1/24", "10.67.0.0/24", "--dhcp")
        assert "DHCP server in" in out and "lease daemon on" in out
        yield lab
    finally:
        lab_down(lab)


def _server_leases(lab: CLILab) -> list[list[str]]:
    return [line.split() for line in lease_file_lines(lab.state / "dhcp-server" / "leases")]


def _pid(directory: Path) -> int:
    return int((directory / "pid").read_text().split()[0])


def test_pod_on_dev_bridge_gets_a_lease_released_on_delete(lab: CLILab) -> None:
    text = Path(__file__).resolve().parents[2].joinpath(
        "examples", "linux-bridge-dhcp.yml").read_text().replace("dev-bridge", lab.dev_bridge)
    nad = lab.tmp / "bridge-dhcp.yml"
    nad.write_text(text)
    lab.ok("apply", "-f", str(nad), "-n", "default")
    lab.ok("pod", "run", "web", "--networks", "bridge-dhcp")

    addrs = lab.ok("pod", "exec", "web", "--", "ip", "-4", "-o", "address", "show", "net1")
    address = addrs.split()[3]
    assert address.startswith("10.66.0.") and address.endswith("/24")
    ip = address.split("/")[0]
    assert int(ip.rsplit(".", 1)[1]) >= 128  # the pool is the LAN's upper half
    deadline = time.monotonic() + 5
    while not _server_leases(lab) and time.monotonic() < deadline:
        time.sleep(0.1)  # dnsmasq writes its lease file after the ACK has gone out
    leases = _server_leases(lab)
    assert [(lease[2], lease[3]) for lease in leases] == [(ip, "web")]  # host-name: the pod
    status = json.loads(lab.ok("pod", "get", "web", "-o", "json"))
    assert ip in json.dumps(status)  # network-status carries the leased address

    lab.ok("pod", "delete", "web")
    deadline = time.monotonic() + 10
    while _server_leases(lab) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _server_leases(lab) == [], "DEL did not release the lease"


def test_lab_down_stops_the_server_and_the_daemon(lab: CLILab) -> None:
    pids = [_pid(lab.state / "dhcp-server"), _pid(lab.state / "daemon")]
    assert all(os.path.exists(f"/proc/{pid}") for pid in pids)
    lab.ok("lab", "down")
    for pid in pids:
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} outlived lab down"
    assert not (lab.state / "daemon").exists()
    assert not (lab.state / "dhcp-server").exists()
