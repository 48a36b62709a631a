"""A DHCPv4 lease client on one interface of one network namespace (pyroute2.dhcp).

Each :class:`Session` runs pyroute2's client (its state machine: DISCOVER/REQUEST,
renewal at T1, rebinding at T2, RELEASE) on an asyncio loop in a thread of its own, and
that thread lives in the interface's network namespace for its whole life: the client
opens its raw socket and its netlink sockets across `await`s, so a loop shared by
several namespaces could open one in the wrong namespace. (The reference daemon does the
same with a goroutine locked to a thread inside the namespace.)

A thread in a namespace, like a socket in it, keeps the namespace alive: the session
checks every few seconds that the namespace path still names the same namespace and the
interface still exists, and ends itself when either is gone, so a pod deleted without a
DEL does not keep its namespace (and its veth on the node's bridge) forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.dhcp.client import AsyncDHCPClient, ClientConfig
from pyroute2.dhcp.enums.dhcp import Option
from pyroute2.dhcp.hooks import Hook, Trigger
from pyroute2.dhcp.leases import Lease as _Pr2Lease
from pyroute2.netlink.exceptions import NetlinkError

from multihome.cni.errors import CNIError
from multihome.errors import MultihomeError
from multihome.net import netns

LOG = logging.getLogger("multihome.dhcp")
# pyroute2's client logs every packet and timer at INFO: on a node with many leases that
# would be most of the daemon's log. What matters (a lease lost, a new address, a client
# ended) is logged here.
logging.getLogger("pyroute2.dhcp").setLevel(logging.WARNING)

# How often a running session looks for its namespace and interface.
LIVENESS_INTERVAL = 2.0
# Options every client asks for: without the times it could not renew on time.
TIMER_OPTIONS: tuple[int, ...] = (int(Option.LEASE_TIME), int(Option.RENEWAL_TIME),
                                  int(Option.REBINDING_TIME))
# The ack keys a lease keeps (pyroute2 also decodes sname/file as bytes, of no use here).
_ACK_KEYS = ("yiaddr", "siaddr", "giaddr", "chaddr", "xid")
# Lease time assumed when the server sends none (the reference plugin's default).
DEFAULT_LEASE_SECONDS = 3600


class DhcpError(MultihomeError):
    """No lease: no server answered in time, the interface is missing, the server said no."""


@dataclass(frozen=True)
class ClientOptions:
    """What the client sends: its identity and the options it asks for."""

    ifname: str
    client_id: bytes  # option 61 with type 0 (not a hardware address), as the reference
    request: tuple[int, ...]  # the parameter request list (option 55)
    hostname: str | None = None  # option 12
    vendor_id: str | None = None  # option 60

    def to_json(self) -> dict[str, Any]:
        return {"ifname": self.ifname, "clientId": self.client_id.decode("latin-1"),
                "request": list(self.request), "hostname": self.hostname,
                "vendorId": self.vendor_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClientOptions:
        request = data["request"]
        if not isinstance(request, list) or not all(
                isinstance(c, int) and 0 < c < 255 for c in request):
            raise ValueError("'request' must be a list of option codes")
        hostname, vendor = data.get("hostname"), data.get("vendorId")
        if not isinstance(data["ifname"], str) or not isinstance(data["clientId"], str) or \
                not isinstance(hostname, str | None) or not isinstance(vendor, str | None):
            raise ValueError("ifname/clientId/hostname/vendorId have the wrong type")
        return cls(data["ifname"], data["clientId"].encode("latin-1"), tuple(request),
                   hostname, vendor)


def _json_safe(value: Any) -> Any:
    """pyroute2's decoded options as JSON: enums as ints, bytes as lists of octets."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str | float) or value is None:
        return value
    return str(value)


@dataclass
class LeaseData:
    """A lease as the server granted it: its ACK (the decoded fields and options), the
    server's MAC (a renewal is unicast to it) and when it was obtained (epoch seconds)."""

    ack: dict[str, Any]
    server_mac: str
    obtained: float

    def to_json(self) -> dict[str, Any]:
        return {"ack": self.ack, "serverMac": self.server_mac, "obtained": self.obtained}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LeaseData:
        ack, mac, obtained = data["ack"], data["serverMac"], data["obtained"]
        if not isinstance(ack, dict) or not isinstance(ack.get("options"), dict) or \
                not isinstance(mac, str) or not isinstance(obtained, int | float):
            raise ValueError("lease has the wrong shape")
        return cls(ack, mac, float(obtained))

    def option(self, name: str) -> Any:
        """An option by pyroute2's name (`router`, `subnet_mask`, …), None when absent."""
        return self.ack["options"].get(name)

    def raw_option(self, code: int) -> bytes | None:
        """An option pyroute2 does not decode (static routes), as its raw octets."""
        try:
            name = Option(code).name.lower()
        except ValueError:
            name = f"option{code}"
        value = self.ack["options"].get(name)
        if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
            return bytes(value)
        return None

    @property
    def address(self) -> ipaddress.IPv4Interface:
        mask = self.option("subnet_mask")
        if not isinstance(mask, str):
            raise DhcpError("the DHCP server's ACK has no subnet mask (option 1)")
        try:
            return ipaddress.IPv4Interface(f"{self.ack['yiaddr']}/{mask}")
        except ValueError as e:
            raise DhcpError(f"the DHCP server's ACK has an invalid address: {e}") from e

    @property
    def gateway(self) -> ipaddress.IPv4Address | None:
        routers = self.option("router")
        if isinstance(routers, list) and routers:
            with contextlib.suppress(ValueError):
                return ipaddress.IPv4Address(routers[0])
        return None

    @property
    def lease_seconds(self) -> int:
        value = self.option("lease_time")
        return value if isinstance(value, int) and value > 0 else DEFAULT_LEASE_SECONDS

    @property
    def expires_at(self) -> float:
        return self.obtained + self.lease_seconds

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at


def _lease_class(saved: LeaseData | None, sink: Callable[[LeaseData], None]) -> type[Any]:
    """A pyroute2 Lease type that hands each granted lease to `sink` (instead of writing
    a file in the working directory) and loads `saved` (instead of reading one)."""

    class _Lease(_Pr2Lease):  # type: ignore[misc]
        def dump(self) -> None:
            ack = {k: _json_safe(self.ack.get(k)) for k in _ACK_KEYS}
            ack["options"] = _json_safe(self.ack.get("options") or {})
            sink(LeaseData(ack, str(self.server_mac), float(self.obtained)))

        @classmethod
        def load(cls, interface: str) -> Any:
            if saved is None or saved.expired:
                return None
            return cls(ack=saved.ack, interface=interface, server_mac=saved.server_mac,
                       obtained=saved.obtained)

    return _Lease


def _namespace_id(fd_or_path: int | str) -> tuple[int, int]:
    st = os.fstat(fd_or_path) if isinstance(fd_or_path, int) else os.stat(fd_or_path)
    return st.st_dev, st.st_ino


@dataclass
class Session:
    """One client: started with :meth:`start`, ended with :meth:`stop` (or by itself when
    the namespace or interface goes). `on_lease` gets every lease the server grants (the
    first, each renewal, a rebind), on the session's thread."""

    netns_path: str
    options: ClientOptions
    on_lease: Callable[[LeaseData], None]
    saved: LeaseData | None = None
    on_end: Callable[[str], None] = lambda why: None
    lease: LeaseData | None = None
    acks: int = 0  # leases granted in this session (1 + renewals and rebinds)
    ended_because: str = ""
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _release = False
    _bound: threading.Event = field(default_factory=threading.Event)
    _running: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"dhcp {self.options.ifname}")
        self._thread.start()

    def wait_bound(self, timeout: float) -> LeaseData:
        """The lease, once the server granted one; DhcpError when none came in time."""
        deadline = time.monotonic() + timeout
        while not self._bound.is_set() and not self._done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._done.wait(min(left, 0.05))
        if self.lease is not None and self._bound.is_set():
            return self.lease
        if isinstance(self._error, CNIError):
            raise self._error  # the namespace path is no namespace: its own code
        if self._error is not None:
            raise DhcpError(f"DHCP on {self.options.ifname}: {self._error}") from self._error
        raise DhcpError(f"no DHCP lease on {self.options.ifname} within {timeout:g} s: "
                        "no server answered (is one serving this network?)")

    @property
    def alive(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    def stop(self, *, release: bool, timeout: float = 5.0) -> None:
        """End the client, sending a DHCPRELEASE first when `release` and it holds a
        lease; waits at most `timeout` for the thread."""
        deadline = time.monotonic() + timeout
        self.request_stop(release=release, timeout=timeout)
        self.join(deadline)

    def request_stop(self, *, release: bool, timeout: float = 5.0) -> None:
        """Ask the client to end (see stop) without waiting for it to have ended."""
        self._release = release
        if self._thread is None:
            return
        self._running.wait(timeout)
        loop, ev = self._loop, self._stop
        if loop is not None and ev is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(ev.set)

    def join(self, deadline: float) -> None:
        """Wait until the thread ended or the monotonic `deadline` passed."""
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))

    # the session's thread

    def _run(self) -> None:
        try:
            with netns.opened(self.netns_path) as fd:
                ns_id = _namespace_id(fd)
                with netns.entered(fd):
                    asyncio.run(self._main(ns_id))
        except BaseException as e:  # reported to wait_bound; the thread just ends
            self._error = e
            self.ended_because = self.ended_because or f"{type(e).__name__}: {e}"
        finally:
            self._running.set()
            self._done.set()
            with contextlib.suppress(Exception):
                self.on_end(self.ended_because or "stopped")

    def _granted(self, lease: LeaseData) -> None:
        if self.lease is not None and self.lease.ack.get("yiaddr") != lease.ack.get("yiaddr"):
            # the old lease was lost (NAK, expiry) and the server gave another address:
            # the pod's interface still has the old one until the pod is recreated
            LOG.warning("dhcp %s: new address %s replaces %s", self.options.ifname,
                        lease.ack.get("yiaddr"), self.lease.ack.get("yiaddr"))
        self.lease = lease
        self.acks += 1
        try:
            self.on_lease(lease)
        except Exception as e:  # persisting failed: the lease itself still holds
            LOG.warning("dhcp %s: cannot record lease: %s", self.options.ifname, e)

    async def _main(self, ns_id: tuple[int, int]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._running.set()
        # the async netlink API: the synchronous one runs a loop of its own
        async with AsyncIPRoute() as ipr:
            found = await ipr.link_lookup(ifname=self.options.ifname)
            if not found:
                raise DhcpError(f"interface {self.options.ifname} not found in "
                                f"{self.netns_path}")
            index = int(found[0])
            await ipr.link("set", index=index, state="up")  # no DHCP on a down link
            client = AsyncDHCPClient(self._config())
            gone = ""
            async with client:
                await client.bootstrap()
                while not self._stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), LIVENESS_INTERVAL)
                    gone = await self._gone(ipr, index, ns_id)
                    if gone:
                        break
                # the RELEASE goes out in the client's exit, while the socket is open
                client.config.release = self._release and not gone.startswith("interface")
                self.ended_because = gone or ("released" if self._release else "stopped")

    async def _gone(self, ipr: Any, index: int, ns_id: tuple[int, int]) -> str:
        try:
            same_ns = _namespace_id(self.netns_path) == ns_id
        except OSError:
            same_ns = False
        if not same_ns:
            return f"network namespace {self.netns_path} is gone"
        try:
            await ipr.link("get", index=index)
        except NetlinkError as e:
            if e.code == errno.ENODEV:
                return f"interface {self.options.ifname} is gone"
            raise
        return ""

    def _config(self) -> ClientConfig:
        async def granted(lease: Any) -> None:
            # the lease type's dump() already handed the lease over; this marks it bound
            self._bound.set()

        async def lost(lease: Any) -> None:
            self._bound.clear()
            if self._release:
                return  # our own RELEASE
            LOG.warning("dhcp %s: lease of %s lost; asking for a new one",
                        self.options.ifname, lease.ip)

        hooks = [Hook(granted, {Trigger.BOUND, Trigger.RENEWED, Trigger.REBOUND}),
                 Hook(lost, {Trigger.EXPIRED, Trigger.UNBOUND})]
        opts = self.options
        return ClientConfig(
            interface=opts.ifname, lease_type=_lease_class(self.saved, self._granted),
            hooks=hooks, requested_parameters=list(opts.request),
            client_id=opts.client_id, host_name=opts.hostname, vendor_id=opts.vendor_id,
            handle_signals=False, write_pidfile=False, release=False)
