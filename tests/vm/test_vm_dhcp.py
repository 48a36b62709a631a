"""A VM on a bridge binding gets its address from the LAN's DHCP server (the one `lab up
--dhcp` runs on the external network) with the guest's own client (busybox udhcpc),
through the pod's in-pod bridge and the node's dev-bridge."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli_lab import lab_up, new_lab
from support.dhcp_server import lease_file_lines
from support.netns import unique
from support.vm_world import EXTERNAL_HOST, NS, VMLab, down, skip_without_vm_tools

pytestmark = pytest.mark.netns

# udhcpc calls its script with the lease in the environment; the guest has no default one
UDHCPC = (
    "printf '%s\\n' '#!/bin/sh' "
    "'[ \"$1\" = bound ] && ip addr add \"$ip/$subnet\" dev \"$interface\" "
    "&& echo \"$ip $router\" > /tmp/lease' > /tmp/udhcpc.sh && chmod +x /tmp/udhcpc.sh && "
    "udhcpc -i eth0 -n -q -t 10 -T 2 -s /tmp/udhcpc.sh >/dev/null 2>&1 && cat /tmp/lease")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[VMLab]:
    skip_without_vm_tools()
    lab = new_lab(VMLab, tmp_path, "mw")
    try:
        lab_up(lab, f"{EXTERNAL_HOST}/24", "10.69.0.0/24", "--dhcp")
        yield lab
    finally:
        down(lab)


def test_vm_on_bridge_binding_leases_its_address_from_the_lan_server(lab: VMLab) -> None:
    lab.apply_nad("bridge-dev", {"cniVersion": "0.3.1", "name": "bridge-dev",
                                 "type": "cnv-bridge", "bridge": lab.dev_bridge,
                                 "macspoofchk": True, "vlan": 0})
    vm = unique("vm")
    lab.ok("vm", "run", vm, "-n", NS, "--networks", "bridge-dev", "--no-pod-network")
    mac = json.loads(lab.ok("vm", "get", vm, "-n", NS, "-o", "json"))[0]["nics"][0]["mac"]

    got = lab.mh("vm", "exec", vm, "-n", NS, "--", "sh", "-c", UDHCPC)
    assert got.returncode == 0, got.stdout + got.stderr
    ip, router = got.stdout.split()
    assert ip.startswith("10.66.0.") and int(ip.rsplit(".", 1)[1]) >= 128
    assert router == EXTERNAL_HOST
    lease_file = lab.state / "dhcp-server" / "leases"
    deadline = time.monotonic() + 5
    while not any(line.split()[1:3] == [mac, ip] for line in lease_file_lines(lease_file)):
        assert time.monotonic() < deadline, lease_file_lines(lease_file)
        time.sleep(0.1)  # dnsmasq writes its lease file after the ACK has gone out
    # the leased address works through the bridge binding, both ways
    ping = lab.mh("vm", "exec", vm, "-n", NS, "--", "ping", "-c", "2", "-W", "2",
                  EXTERNAL_HOST)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert lab.in_external("ping", "-c", "2", "-W", "2", ip).returncode == 0
