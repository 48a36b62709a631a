"""The daemon's HTTP/1.1 server on a unix socket and its lifecycle (start, SIGTERM, stop).

Routes: `POST /cni` (a CNI call, see multihome.shim for the format), `GET /healthz`
(the process answers), `GET /readyz` (the node's CNI config is written and we are not
stopping), `GET /metrics` (Prometheus text).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import socketserver
import stat
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import FrameType
from typing import Any

from multihome import shim
from multihome.cni.errors import CNIError
from multihome.daemon import logs
from multihome.daemon.autoconf import ConfigWriter, Settings
from multihome.daemon.metrics import DaemonMetrics
from multihome.daemon.pool import WorkerPool
from multihome.daemon.requests import CNIRequest, Runner, error_reply
from multihome.plugins.registry import BUILTIN
from multihome.store import keep_open

MAX_BODY = 4 * 1024 * 1024  # a CNI config is kilobytes; refuse anything absurd


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


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = False  # shutdown joins the connection threads: in-flight work ends
    block_on_close = True
    daemon: Daemon


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "multihome"

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one structured line per CNI request comes from the runner

    def _reply(self, status: int, body: bytes, ctype: str = "application/json",
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

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
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, b"request too large\n", "text/plain")
            return
        body = self.rfile.read(length)
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
            code, out = d.runner.serve(req)
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
        self.pool = WorkerPool(opts.workers, opts.queue)
        self.runner = Runner(self.pool, self.metrics)
        self.config: ConfigWriter | None = None
        if opts.conf_dir:
            self.config = ConfigWriter(Settings(opts.conf_dir, opts.socket, opts.bin_dir,
                                                opts.store, opts.cni_dir), opts.poll_interval)
        self.stopping = threading.Event()
        self._server: _Server | None = None

    def readiness(self) -> tuple[bool, str]:
        if self.stopping.is_set():
            return False, "shutting down"
        if self.config is not None and not self.config.ready:
            return False, f"waiting for a default network config in {self.opts.conf_dir}"
        return True, "ready"

    def start(self) -> None:
        warm_imports()
        keep_open()
        if self.config is not None:
            self.config.start()
        self._server = _listen(self.opts.socket)
        self._server.daemon = self
        logs.log(20, "listening", socket=self.opts.socket, workers=self.opts.workers,
                 queue=self.opts.queue, conf_dir=self.opts.conf_dir or "-")

    def serve_forever(self) -> None:
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, remove the socket; keep the config."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        logs.log(20, "stopping", in_flight=self.pool.admitted)
        server = self._server
        if server is not None:
            server.shutdown()  # the accept loop ends; handler threads go on
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.opts.socket)  # new callers see "not running" at once
            server.server_close()  # joins every handler thread: in-flight work completes
        self.pool.shutdown()
        if self.config is not None:
            self.config.stop()
        logs.log(20, "stopped")


def run(opts: DaemonOptions) -> None:
    """Run until SIGTERM or SIGINT."""
    daemon = Daemon(opts)
    daemon.start()

    stopper: list[threading.Thread] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever, which runs in this very thread: stop elsewhere
        if not stopper:
            stopper.append(threading.Thread(target=daemon.stop, name="shutdown"))
            stopper[0].start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon.serve_forever()
    for thread in stopper:
        thread.join()
