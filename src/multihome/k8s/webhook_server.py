"""The admission webhook's HTTPS server: one thread per connection, a bound on them, the TLS
handshake inside that thread with a timeout, and certificates re-read when rotated.

Why not `ssl.wrap_socket` on the listening socket: then `accept()` performs the handshake
on the one thread that accepts, and a client that connects and never finishes it stops
the webhook for every API server request (and with failurePolicy Fail, every NAD write
in the cluster). Here `accept()` only accepts; the handshake, the request and the reply
run in the connection's thread under `timeout_s` each, and at most `max_connections` run
at once (more are closed at once rather than queued behind a stalled one).

cert-manager rotates the certificate by rewriting the Secret, which the kubelet swaps
into the volume; the files' identity (inode, mtime, size) is checked at each connection,
and a changed pair is loaded into a new context (a half-written pair keeps the old one
until both match).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
TIMEOUT_S = 10.0


class ReloadingContext:
    """An SSLContext for a certificate and key file pair, rebuilt when the files change."""

    def __init__(self, cert: str, key: str) -> None:
        self.cert, self.key = cert, key
        self._lock = threading.Lock()
        self._stamp = self._files_stamp()
        self._context = self._load()  # the first load must work: errors reach the caller
        self.reloads = 0

    def _files_stamp(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for path in (self.cert, self.key):
            try:
                st = os.stat(path)
            except OSError:
                out.append((0, 0, 0))
                continue
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _load(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def current(self) -> ssl.SSLContext:
        stamp = self._files_stamp()
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._context = self._load()
                except (OSError, ssl.SSLError, ValueError) as e:
                    # mid-rotation (the key not yet matching the certificate): keep
                    # serving the old pair, try again at the next connection
                    log.warning("webhook: cannot load the rotated certificate yet: %s", e)
                else:
                    self._stamp = stamp
                    self.reloads += 1
                    log.info("webhook: certificate %s reloaded", self.cert)
            return self._context


class TLSServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose connection threads do the TLS handshake themselves."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 tls: ReloadingContext, *, max_connections: int = MAX_CONNECTIONS,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.tls, self.timeout_s = tls, timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self.refused = 0  # connections closed because every slot was taken
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        raw: socket.socket = request
        raw.settimeout(self.timeout_s)  # bounds the handshake and every read and write
        try:
            tls = self.tls.current().wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as e:  # stalled, not TLS, or a bad client hello
            log.debug("webhook: TLS handshake with %s failed: %s", client_address, e)
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("webhook: connection from %s failed", client_address, exc_info=True)
