"""The node daemon's DHCP leases: one client session per attachment, persisted.

The reference `dhcp` IPAM needs a separate daemon that the operator starts by hand and
that forgets its leases when it restarts. Here the node daemon owns a :class:`LeaseManager`
(installed with :func:`install` at start); the `dhcp` IPAM plugin, which the daemon runs
in-process, asks it for a lease. Each lease is written to `<state dir>/dhcp/<id>.json`
(0600, in a 0700 directory) on every ACK, so a restarted daemon re-adopts it: the
client asks the server for the same address again (INIT-REBOOT) and renews on time.

An attachment is keyed as the reference keys it, and that key is also the client ID the
server sees: `<container id>/<network name>/<ifname>`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from functools import partial

from multihome import paths
from multihome.net import netns
from multihome.net.dhcp import ClientOptions, DhcpError, LeaseData, Session

LOG = logging.getLogger("multihome.dhcp")

LEASE_DIR = "dhcp"
# How long an ADD waits for the server's ACK (the reference daemon's resend timeout is
# longer, but the runtime's own CNI timeout comes first; 11 tells it to retry).
ACQUIRE_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
RECORD_VERSION = 1
# A client is a thread with its sockets: a bound on them all (pods per node are far fewer).
MAX_LEASES = 2048
MAX_RECORD_BYTES = 64 * 1024  # a record is a few hundred bytes; a bigger file is not ours


@dataclass(frozen=True)
class LeaseKey:
    container_id: str
    network: str
    ifname: str

    @property
    def client_id(self) -> str:
        # RFC 2132: the option's length is one octet (the reference truncates the same way)
        return f"{self.container_id}/{self.network}/{self.ifname}"[:254]

    @property
    def file_name(self) -> str:
        """A digest: a container ID or network name never becomes part of a path."""
        return hashlib.sha256(self.client_id.encode()).hexdigest()[:40] + ".json"


@dataclass
class _Held:
    key: LeaseKey
    netns_path: str
    session: Session = field(init=False)
    released: bool = False


class LeaseManager:
    def __init__(self, state_dir: str, *, acquire_timeout: float = ACQUIRE_TIMEOUT) -> None:
        self.dir = os.path.join(state_dir, LEASE_DIR)
        self.acquire_timeout = acquire_timeout
        self._lock = threading.Lock()
        self._held: dict[LeaseKey, _Held] = {}

    # the IPAM plugin's calls

    def acquire(self, key: LeaseKey, netns_path: str, options: ClientOptions) -> LeaseData:
        """The lease of this attachment: the one held (an ADD retried, or one still being
        acquired by a concurrent ADD), else a new one from the server. DhcpError when no
        server grants one in time."""
        with self._lock:
            held = self._held.get(key)
            reuse = held is not None and held.session.alive and held.netns_path == netns_path
            if not reuse:
                if held is None and len(self._held) >= MAX_LEASES:
                    raise DhcpError(f"this node already holds {MAX_LEASES} DHCP leases")
                stale, held = held, self._holder(key, netns_path, options)
                self._held[key] = held
        assert held is not None
        if not reuse:
            if stale is not None:  # another namespace now, or its client ended
                stale.released = True
                stale.session.stop(release=False, timeout=STOP_TIMEOUT)
            held.session.start()
        try:
            return held.session.wait_bound(self.acquire_timeout)
        except BaseException:
            with self._lock:
                mine = self._held.get(key) is held
            if mine:
                self._end(key, release=False)
            raise

    def release(self, key: LeaseKey) -> bool:
        """DEL: send DHCPRELEASE, stop renewing, forget the lease. False when none was held."""
        return self._end(key, release=True)

    def lease_of(self, key: LeaseKey) -> LeaseData | None:
        with self._lock:
            held = self._held.get(key)
        return held.session.lease if held is not None and held.session.alive else None

    def session_of(self, key: LeaseKey) -> Session | None:
        with self._lock:
            held = self._held.get(key)
        return held.session if held is not None else None

    def held(self) -> list[LeaseKey]:
        with self._lock:
            return list(self._held)

    # the daemon's calls

    def readopt(self) -> int:
        """Start a client for every lease on disk whose namespace is still there (the
        daemon restarted): it asks for the same address and renews from then on. Records
        of attachments that are gone are removed. Returns the number re-adopted."""
        adopted = 0
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return 0
        for name in names:
            if not name.endswith(".json") or name.startswith("."):
                continue
            path = os.path.join(self.dir, name)
            try:
                key, netns_path, options, lease = _read_record(path)
            except (OSError, ValueError, KeyError, TypeError) as e:
                LOG.warning("dhcp: ignoring unreadable lease record %s: %s", path, e)
                continue
            if key.file_name != name:
                LOG.warning("dhcp: ignoring lease record %s: it names another attachment", path)
                continue
            if lease.expired or not netns.exists(netns_path):
                _unlink(path)
                continue
            with self._lock:
                if key in self._held:
                    continue
                holder = self._holder(key, netns_path, options, lease)
                holder.session.lease = lease
                self._held[key] = holder
            holder.session.start()
            adopted += 1
            LOG.info("dhcp: re-adopted lease %s of %s", lease.address, key.client_id)
        return adopted

    def shutdown(self) -> None:
        """The daemon stops: end every client WITHOUT releasing; the records stay, so the
        next daemon re-adopts the leases. All are told at once, one bounded wait for all."""
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        deadline = time.monotonic() + STOP_TIMEOUT
        for h in held:
            h.session.request_stop(release=False, timeout=STOP_TIMEOUT)
        for h in held:
            h.session.join(deadline)

    # internals

    def _holder(self, key: LeaseKey, netns_path: str, options: ClientOptions,
                saved: LeaseData | None = None) -> _Held:
        holder = _Held(key, netns_path)
        holder.session = Session(netns_path, options, on_lease=partial(self._record, holder),
                                 saved=saved, on_end=partial(self._ended, holder))
        return holder

    def _end(self, key: LeaseKey, *, release: bool) -> bool:
        with self._lock:
            held = self._held.pop(key, None)
            if held is not None:
                held.released = True
        _unlink(os.path.join(self.dir, key.file_name))
        if held is None:
            return False
        held.session.stop(release=release, timeout=STOP_TIMEOUT)
        return True

    def _record(self, held: _Held, lease: LeaseData) -> None:
        """Every ACK (the first, each renewal) is written, so a restart starts from it."""
        data = {"version": RECORD_VERSION, "containerId": held.key.container_id,
                "network": held.key.network, "ifname": held.key.ifname,
                "netns": held.netns_path, "options": held.session.options.to_json(),
                "lease": lease.to_json()}
        with self._lock:
            if held.released:
                return  # a DEL raced this renewal: the record must stay gone
            # made on the first lease: a daemon that never serves `dhcp` leaves no trace
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            paths.write_file_atomic(os.path.join(self.dir, held.key.file_name),
                                    json.dumps(data), 0o600)

    def _ended(self, held: _Held, why: str) -> None:
        """A session ended on its own (namespace or interface gone): forget it."""
        if why in ("released", "stopped"):
            return
        LOG.info("dhcp: %s no longer renewed: %s", held.key.client_id, why)
        with self._lock:
            if self._held.get(held.key) is held:
                del self._held[held.key]
                held.released = True
            else:
                return
        _unlink(os.path.join(self.dir, held.key.file_name))


def _read_record(path: str) -> tuple[LeaseKey, str, ClientOptions, LeaseData]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_RECORD_BYTES + 1)
    if len(raw) > MAX_RECORD_BYTES:
        raise ValueError("record too large")
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
        raise ValueError("not a lease record of this version")
    key = LeaseKey(str(data["containerId"]), str(data["network"]), str(data["ifname"]))
    netns_path = data["netns"]
    if not isinstance(netns_path, str) or not netns_path.startswith("/"):
        raise ValueError("'netns' must be an absolute path")
    return key, netns_path, ClientOptions.from_json(data["options"]), \
        LeaseData.from_json(data["lease"])


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# The manager of this process: the daemon installs one. Without it the `dhcp` IPAM asks
# the daemon whose socket :func:`forward_to` named (the local lab's engine runs in the
# CLI and its pods' leases live in the lab's daemon); with neither it says so (code 11).
_current: LeaseManager | None = None
_daemon_socket = ""


def install(manager: LeaseManager | None) -> None:
    global _current
    _current = manager


def current() -> LeaseManager | None:
    return _current


def forward_to(socket_path: str) -> None:
    """The daemon socket that holds leases for this process (set by the node's own
    configuration, never by a network config)."""
    global _daemon_socket
    _daemon_socket = socket_path


def daemon_socket() -> str:
    return _daemon_socket
