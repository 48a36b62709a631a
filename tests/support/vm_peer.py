"""The lab VM that run_tier.py boots on the host, seen from inside the tier's guest.

The VM's NIC is joined to one NIC of the guest (found by its MAC) and its agent's serial
port is a virtio port of the guest. The test then does what the lab's qemu does with the
tap fd that the bridge binding returns: `FrameRelay` moves frames between that tap and
the NIC, so everything from the tap inward (the in-pod bridge, netN, the node's bridge
port and its VLAN) is the real binding on the real kernel. `agent_dir` makes the port
look like a VM directory's agent.sock, so multihome.vm.agent talks to the VM unchanged.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kernel.run_tier import VM_AGENT_ENV, VM_ERROR_ENV, VM_NIC_MAC_ENV
from multihome.net import links, sysctl
from multihome.net.netns import iproute_in
from multihome.vm import qemu

# The tap is opened with IFF_VNET_HDR (qemu wants it): every frame on its fd starts with
# a virtio_net_hdr, 10 bytes unless TUNSETVNETHDRSZ changed it; all zero = no offload.
VNET_HDR_LEN = 10
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1


@dataclass(frozen=True)
class Peer:
    nic: str  # the guest's NIC whose other end is the VM's NIC
    agent_port: str  # /dev/vportNpM of the VM's agent


def from_env() -> Peer:
    """The VM the runner booted; AssertionError (a failure, not a skip) when there is none."""
    error = os.environ.get(VM_ERROR_ENV)
    assert not error, error
    mac, port_name = os.environ.get(VM_NIC_MAC_ENV), os.environ.get(VM_AGENT_ENV)
    assert mac and port_name, f"run_tier.py set no {VM_NIC_MAC_ENV} / {VM_AGENT_ENV}"
    with iproute_in(None) as ipr:
        nic = next((link.name for link in links.all_links(ipr) if link.mac == mac), None)
    assert nic, f"the guest has no NIC with MAC {mac}"
    ports = Path("/sys/class/virtio-ports")
    port = next((p.name for p in ports.iterdir()
                 if (p / "name").read_text().strip() == port_name), None)
    assert port, f"the guest has no virtio port named {port_name}"
    return Peer(nic=nic, agent_port=f"/dev/{port}")


class _Pump:
    """A thread moving bytes between two endpoints until `close`."""

    def __init__(self) -> None:
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def __enter__(self) -> _Pump:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _loop(self) -> None:
        raise NotImplementedError

    def _stopped(self, ready: list[int]) -> bool:
        return self._stop_r in ready

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=10)
        os.close(self._stop_r)
        os.close(self._stop_w)


class FrameRelay(_Pump):
    """Frames between a tap fd (as qemu sees it) and a NIC, through a packet socket."""

    def __init__(self, tap_fd: int, nic: str) -> None:
        super().__init__()
        self.tap_fd, self.nic = tap_fd, nic
        # Only the VM's frames may leave through the NIC: none of the guest's own.
        sysctl.write_best_effort(sysctl.iface_key("ipv6", nic, "disable_ipv6"), "1")
        with iproute_in(None) as ipr:
            link = links.by_name(ipr, nic)
            assert link is not None, nic
            links.set_up(ipr, link.index)
            self.index = link.index
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((nic, ETH_P_ALL))
        # Frames for the VM carry the VM's MAC, not the NIC's; the membership ends with
        # the socket.
        self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                             struct.pack("iHH8s", self.index, PACKET_MR_PROMISC, 0, b""))
        self.start()

    def _loop(self) -> None:
        sock_fd = self.sock.fileno()
        while True:
            ready, _, _ = select.select([self.tap_fd, sock_fd, self._stop_r], [], [])
            if self._stopped(ready):
                return
            with contextlib.suppress(OSError):  # a frame lost, as on a wire
                if self.tap_fd in ready:
                    self.sock.send(os.read(self.tap_fd, 65536)[VNET_HDR_LEN:])
                if sock_fd in ready:
                    frame, address = self.sock.recvfrom(65536)
                    if address[2] != socket.PACKET_OUTGOING:
                        os.write(self.tap_fd, bytes(VNET_HDR_LEN) + frame)

    def close(self) -> None:
        super().close()
        self.sock.close()
        with iproute_in(None) as ipr:
            links.set_down(ipr, self.index)


class _AgentRelay(_Pump):
    """Serves `agent.sock` in a directory, one connection at a time, onto the port."""

    def __init__(self, port: str, directory: Path) -> None:
        super().__init__()
        self.port_fd = os.open(port, os.O_RDWR | os.O_CLOEXEC)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(directory / qemu.AGENT_SOCK))
        self.server.listen(1)
        self.start()

    def _loop(self) -> None:
        conn: socket.socket | None = None
        while True:
            watched = [self._stop_r, self.port_fd,
                       conn.fileno() if conn else self.server.fileno()]
            ready, _, _ = select.select(watched, [], [])
            if self._stopped(ready):
                if conn:
                    conn.close()
                return
            if conn is None and self.server.fileno() in ready:
                conn, _ = self.server.accept()
            elif conn is not None and conn.fileno() in ready:
                data = conn.recv(65536)
                if data:
                    os.write(self.port_fd, data)
                else:
                    conn.close()
                    conn = None
            if self.port_fd in ready:
                data = os.read(self.port_fd, 65536)
                if conn is not None:  # else: a reply nobody waits for any more
                    conn.sendall(data)

    def close(self) -> None:
        super().close()
        self.server.close()
        os.close(self.port_fd)


@contextlib.contextmanager
def agent_dir(peer: Peer, directory: Path) -> Iterator[str]:
    """A directory to pass to multihome.vm.agent as the VM's directory."""
    relay = _AgentRelay(peer.agent_port, directory)
    try:
        yield str(directory)
    finally:
        relay.close()
