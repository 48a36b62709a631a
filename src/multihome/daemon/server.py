"""The daemon's HTTP/1.1 server on a unix socket and its lifecycle (start, SIGTERM, stop).

Routes: `POST /cni` (a CNI call, see multihome.shim for the format), `GET /healthz`
(the process answers), `GET /readyz` (the node's CNI config is written and we are not
stopping), `GET /metrics` (Prometheus text).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import signal
import socket
import socketserver
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import FrameType
from typing import Any

from multihome import shim
from multihome.cni import jsontext
from multihome.cni.errors import CNIError, DecodingFailure, InternalError, TryAgainLater
from multihome.daemon import logs
from multihome.daemon.autoconf import (
    CONFIG_NAME,
    MULTUS_CONFIG_NAME,
    ConfigWriter,
    Settings,
)
from multihome.daemon.metrics import DaemonMetrics
from multihome.daemon.multus_daemon_config import MultusDaemonConfig
from multihome.daemon.pool import DEFAULT_WAIT, WorkerPool
from multihome.daemon.requests import CNIRequest, EngineDefaults, Runner, error_reply
from multihome.ipam import dhcp_leases
from multihome.paths import DEFAULT_DAEMON_STATE_DIR
from multihome.plugins.registry import BUILTIN
from multihome.store import keep_open

MAX_BODY = 4 * 1024 * 1024  # a CNI config is kilobytes; refuse anything absurd
# A caller has this long from connecting to having sent its whole request: idle and
# slow (byte-a-second) connections end here, not when the client chooses.
READ_TIMEOUT = 10.0
WRITE_TIMEOUT = 10.0  # a reply that the client does not read is dropped after this
SHUTDOWN_GRACE = 30.0  # SIGTERM: in-flight requests get this long, then the daemon exits
_ANCESTRY_DEPTH = 64  # process tree levels looked at to recognise a nested call
_REFUSED_KEPT = 64  # refused connections waiting to be closed, at most


@dataclass(frozen=True)
class DaemonOptions:
    socket: str
    conf_dir: str = ""
    bin_dir: str = ""
    store: str = ""
    cni_dir: str = ""
    workers: int = 4
    queue: int = 32
    poll_interval: float = 1.0
    request_timeout: float = DEFAULT_WAIT
    shutdown_grace: float = SHUTDOWN_GRACE
    # the daemon's own state: DHCP leases (0600) live under <state_dir>/dhcp
    state_dir: str = DEFAULT_DAEMON_STATE_DIR
    # Multus' daemon config (`daemon --multus-config`): its keys go on every engine
    # request and the conf dir gets Multus' 00-multus.conf
    multus: MultusDaemonConfig | None = None
    # called once the daemon serves (Kubernetes mode starts its pod watchers here, which
    # share the daemon's per-container order and its engine config)
    on_start: Callable[[Daemon], object] | None = None

    @property
    def max_connections(self) -> int:
        """Open connections at most: every admitted request (setup lane, teardown lane
        and nested calls each hold up to workers + queue) plus room for DELs waiting for
        a teardown slot; a thread apiece, so bounded, but generously."""
        return max(3 * (self.workers + self.queue) + 16, 256)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    # stop() bounds its own wait for in-flight work; a stuck connection must not keep
    # the process alive
    daemon_threads = True
    block_on_close = False
    daemon: Daemon
    max_connections = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conn_lock = threading.Condition()
        self.connections = 0
        # refused connections, closed a little later: closing one whose request is still
        # unread would reset it before the client reads our answer
        self._refused: list[tuple[float, socket.socket]] = []

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            full = self.connections >= self.max_connections
            if not full:
                self.connections += 1
        if full:
            _refuse_connection(request, self.connections)
            if len(self._refused) >= _REFUSED_KEPT:
                _drain_and_close(self._refused.pop(0)[1])
            self._refused.append((time.monotonic() + 1.0, request))
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._conn_lock:
                self.connections -= 1
            raise

    def service_actions(self) -> None:
        """Each turn of the accept loop: close the refused connections that are due."""
        now = time.monotonic()
        due = [s for t, s in self._refused if t <= now]
        self._refused = [(t, s) for t, s in self._refused if t > now]
        for sock in due:
            _drain_and_close(sock)

    def server_close(self) -> None:
        super().server_close()
        for _, sock in self._refused:
            _drain_and_close(sock)
        self._refused = []

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self.connections -= 1
                self._conn_lock.notify_all()

    def wait_drained(self, timeout: float) -> bool:
        """Wait until every accepted connection got its answer and closed (bounded);
        True when none is left. A request's work ends before its connection thread
        writes the answer: exiting at that moment would lose it."""
        with self._conn_lock:
            return self._conn_lock.wait_for(lambda: self.connections <= 0, max(0.0, timeout))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # one log line, never a traceback on stderr per bad client
        exc = sys.exc_info()[1]
        logs.log(30, "connection failed", error=f"{type(exc).__name__}: {exc}")


def _refuse_connection(request: socket.socket, count: int) -> None:
    err = TryAgainLater(f"multihome daemon is busy: {count} connections open; "
                        "try again later")
    _, body = error_reply(err)
    data = body.encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"{shim.CODE_HEADER}: 1\r\n{shim.BUSY_HEADER}: 1\r\n"
            f"Content-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n").encode()
    with contextlib.suppress(OSError):
        request.settimeout(0.0)  # a fresh socket's buffer takes it; never block the acceptor
        request.sendall(head + data)
        request.shutdown(socket.SHUT_WR)


def _drain_and_close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        for _ in range(MAX_BODY // 65536 + 1):  # a request's worth, already arrived
            if not sock.recv(65536):  # non-blocking
                break
    sock.close()


class _DeadlineReader(io.RawIOBase):
    """Socket reads that all end by one deadline (TimeoutError after it)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"request not received within {READ_TIMEOUT:g} s")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _BadRequest(Exception):
    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status


def _peer_pid(sock: socket.socket) -> int:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return 0
    return int(struct.unpack("3i", creds)[0])


def _parent_pid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read()
    except OSError:
        return 0
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses
    fields = stat_line.rpartition(b")")[2].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0


def started_by(pid: int, ancestor: int) -> bool:
    """True when process `pid` descends from `ancestor` (the kernel-reported tree)."""
    for _ in range(_ANCESTRY_DEPTH):
        if pid <= 1:
            return False
        pid = _parent_pid(pid)
        if pid == ancestor:
            return True
    return False


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "multihome"

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BufferedReader(
            _DeadlineReader(self.connection, time.monotonic() + READ_TIMEOUT))

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one structured line per CNI request comes from the runner

    def _reply(self, status: int, body: bytes, ctype: str = "application/json",
               headers: dict[str, str] | None = None) -> None:
        self.connection.settimeout(WRITE_TIMEOUT)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _reply_cni(self, status: int, err: CNIError) -> None:
        code, out = error_reply(err)
        self._reply(status, out.encode(), "application/json", {shim.CODE_HEADER: str(code)})

    def do_GET(self) -> None:
        d = self.server.daemon
        if self.path == "/healthz":
            self._reply(200, b"ok\n", "text/plain")
        elif self.path == "/readyz":
            ready, why = d.readiness()
            self._reply(200 if ready else 503, f"{why}\n".encode(), "text/plain")
        elif self.path == "/metrics":
            self._reply(200, d.metrics.render().encode(), "text/plain; version=0.0.4")
        else:
            self._reply(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        if self.path != "/cni":
            self._reply(404, b"not found\n", "text/plain")
            return
        try:
            body = self._body()
        except _BadRequest as e:
            self._reply_cni(e.status, DecodingFailure(f"bad request to the multihome "
                                                      f"daemon: {e}"))
            return
        except (TimeoutError, OSError) as e:
            with contextlib.suppress(OSError):
                self._reply_cni(408, DecodingFailure(f"request to the multihome daemon not "
                                                     f"received: {e}"))
            return
        try:
            self._serve(body)
        except OSError:
            self.close_connection = True  # the caller went away; nothing to tell it
        except Exception as e:  # a reply, never a dropped connection or a traceback
            logs.log(40, "request failed", error=f"{type(e).__name__}: {e}")
            with contextlib.suppress(OSError):
                self._reply_cni(500, InternalError(f"multihome daemon failed: "
                                                   f"{type(e).__name__}: {e}"))

    def _body(self) -> bytes:
        """The request body, read within the size and time limits (or _BadRequest)."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise _BadRequest(411, "Transfer-Encoding is not accepted; send Content-Length")
        values = self.headers.get_all("Content-Length") or []
        if not values:
            raise _BadRequest(411, "Content-Length is required")
        text = values[0].strip()
        if any(v.strip() != text for v in values) or not text or len(text) > 12 or \
                not all(c in "0123456789" for c in text):
            raise _BadRequest(400, f"invalid Content-Length {values[0][:40]!r}")
        length = int(text)
        if length > MAX_BODY:
            raise _BadRequest(413, f"request of {length} bytes is larger than {MAX_BODY}")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _BadRequest(400, f"request ended after {len(body)} of {length} bytes")
        return body

    def _serve(self, body: bytes) -> None:
        d = self.server.daemon
        try:
            req = CNIRequest.from_json(body)
        except CNIError as e:
            code, out = error_reply(e)
        else:
            if not d.runner.in_own_netns(req):
                self._reply(200, b"", "text/plain", {
                    shim.FALLBACK_HEADER: "caller is in another network namespace than the "
                                          "daemon"})
                return
            code, out = d.runner.serve(req, nested=d.is_own_child(self.connection))
        # the plugin's stdout as it is, its exit code beside it: the shim needs no JSON
        self._reply(200, out.encode("utf-8", "surrogateescape"), "application/json",
                    {shim.CODE_HEADER: str(code)})


def _listen(path: str) -> _Server:
    """Bind the socket root-only: made in a 0700 dir and chmod'ed 0600 before listen."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            _refuse_if_live(path)
            os.unlink(path)
    old_umask = os.umask(0o177)
    try:
        server = _Server(path, _Handler, bind_and_activate=False)
        server.server_bind()
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    server.request_queue_size = 128
    server.server_activate()
    return server


def _refuse_if_live(path: str) -> None:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return  # stale socket of a dead daemon
    finally:
        probe.close()
    raise RuntimeError(f"another multihome daemon is listening on {path}")


def warm_imports() -> None:
    """Load the built-in plugins now, not on a pod's first ADD."""
    for module in sorted(set(BUILTIN.values())):
        with contextlib.suppress(Exception):
            importlib.import_module(module)


class Daemon:
    def __init__(self, opts: DaemonOptions) -> None:
        self.opts = opts
        self.metrics = DaemonMetrics()
        self.pool = WorkerPool(opts.workers, opts.queue, opts.request_timeout)
        self.pid = os.getpid()
        self.runner = Runner(self.pool, self.metrics, EngineDefaults(
            opts.multus.request_overlay if opts.multus else {}, opts.store))
        self.config: ConfigWriter | None = None
        if opts.conf_dir:
            self.config = ConfigWriter(Settings(opts.conf_dir, opts.socket, opts.bin_dir,
                                                opts.store, opts.cni_dir, opts.multus),
                                       opts.poll_interval)
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self.leases: dhcp_leases.LeaseManager | None = None

    def engine_config(self) -> dict[str, Any] | None:
        """The engine's config as the runtime sends it for a pod: the engine plugin of the
        file this daemon writes in its conf dir, with the daemon's keys laid over it as
        on every request. None while there is no such file (no default network yet)."""
        if not self.opts.conf_dir:
            return None
        name = MULTUS_CONFIG_NAME if self.opts.multus is not None else CONFIG_NAME
        try:
            with open(os.path.join(self.opts.conf_dir, name), "rb") as f:
                data = jsontext.loads(f.read(), name)
        except (OSError, CNIError):
            return None
        if not isinstance(data, dict):
            return None
        plugins = data.get("plugins")
        plugin = plugins[0] if isinstance(plugins, list) and plugins else data
        if not isinstance(plugin, dict):
            return None
        conf = {"cniVersion": data.get("cniVersion"), "name": data.get("name"), **plugin}
        try:
            out = jsontext.loads(self.runner.engine.apply(json.dumps(conf).encode()))
        except CNIError:
            return None
        return out if isinstance(out, dict) else None

    def is_own_child(self, conn: socket.socket) -> bool:
        """Is the caller a process we started (a plugin's nested call)?"""
        pid = _peer_pid(conn)
        return pid > 0 and started_by(pid, self.pid)

    def readiness(self) -> tuple[bool, str]:
        if self.stopping.is_set():
            return False, "shutting down"
        if self.config is not None and not self.config.ready:
            return False, f"waiting for a default network config in {self.opts.conf_dir}"
        return True, "ready"

    def start(self) -> None:
        # the plugins we exec inherit it: a Go delegate's IPAM that resolves to our shim
        # reaches this daemon (and is recognised as a nested call), not the default socket
        os.environ[shim.SOCKET_ENV] = self.opts.socket
        warm_imports()
        keep_open()
        self._start_leases()
        if self.config is not None:
            self.config.start()
        self._server = _listen(self.opts.socket)
        self._server.daemon = self
        self._server.max_connections = self.opts.max_connections
        logs.log(20, "listening", socket=self.opts.socket, workers=self.opts.workers,
                 queue=self.opts.queue, conf_dir=self.opts.conf_dir or "-")

    def _start_leases(self) -> None:
        """The DHCP lease holder of the `dhcp` IPAM, with the leases a previous daemon
        left re-adopted (asked for again and renewed from now on)."""
        self.leases = dhcp_leases.LeaseManager(self.opts.state_dir)
        dhcp_leases.install(self.leases)
        adopted = self.leases.readopt()
        if adopted:
            logs.log(20, "dhcp leases re-adopted", leases=adopted)

    def serve_forever(self) -> None:
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> bool:
        """Stop accepting, give in-flight requests the grace time, remove the socket; keep
        the config. False when requests were still running at the end of the grace."""
        if self.stopping.is_set():
            return True
        self.stopping.set()
        logs.log(20, "stopping", in_flight=self.pool.admitted)
        server = self._server
        if server is not None:
            server.shutdown()  # the accept loop ends; handler threads go on
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.opts.socket)  # new callers see "not running" at once
            server.server_close()
        deadline = time.monotonic() + self.opts.shutdown_grace
        idle = self.pool.wait_idle(self.opts.shutdown_grace)
        if idle and server is not None:
            server.wait_drained(deadline - time.monotonic())
        if not idle:
            logs.log(30, "stopping without waiting for requests still running",
                     in_flight=self.pool.admitted, grace_s=self.opts.shutdown_grace)
        self.pool.shutdown(wait=idle)
        if self.config is not None:
            self.config.stop()
        if self.leases is not None:
            # not released: the records stay, and the next daemon renews the same leases
            self.leases.shutdown()
            dhcp_leases.install(None)
        logs.log(20, "stopped")
        return idle


def run(opts: DaemonOptions) -> None:
    """Run until SIGTERM or SIGINT."""
    daemon = Daemon(opts)
    daemon.start()
    if opts.on_start is not None:
        opts.on_start(daemon)

    stopper: list[threading.Thread] = []

    clean: list[bool] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever, which runs in this very thread: stop elsewhere
        if not stopper:
            stopper.append(threading.Thread(target=lambda: clean.append(daemon.stop()),
                                            name="shutdown", daemon=True))
            stopper[0].start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon.serve_forever()
    for thread in stopper:
        thread.join()
    if clean != [True]:
        # a worker still runs a plugin: the interpreter would wait for it at exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
