"""qemu's monitor protocol (QMP) on the VM's `qmp.sock`: one connection per use.

JSON lines: qemu greets, the client sends `qmp_capabilities`, then each command gets
one `return` or `error` reply; events arrive in between and are kept for `wait_event`.
Every read has a deadline, so a qemu that stops answering is an error, never a hang.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from multihome.vm.errors import VMError

QMP_SOCK = "qmp.sock"
STEP = "qmp"
MAX_LINE = 1 << 20  # a reply longer than this is not qemu's


class QMP:
    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock, self._timeout = sock, timeout
        self._buf = b""
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VMError(STEP, "qemu did not answer on its monitor in time")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError as e:
                raise VMError(STEP, "qemu did not answer on its monitor in time") from e
            if not chunk:
                raise VMError(STEP, "qemu closed its monitor (did it exit?)")
            self._buf += chunk
            if len(self._buf) > MAX_LINE:
                raise VMError(STEP, "qemu's monitor sent an over-long line")
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError as e:
            raise VMError(STEP, f"qemu's monitor sent a bad line: {line[:80]!r}") from e
        if not isinstance(msg, dict):
            raise VMError(STEP, f"qemu's monitor sent a bad line: {line[:80]!r}")
        return msg

    def execute(self, command: str, arguments: dict[str, Any] | None = None, *,
                fds: list[int] | None = None, timeout: float | None = None) -> Any:
        """Run a command; its `return` value, or VMError with qemu's own message."""
        req: dict[str, Any] = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        data = json.dumps(req).encode() + b"\n"
        self._sock.settimeout(self._timeout)
        if fds:
            socket.send_fds(self._sock, [data], fds)
        else:
            self._sock.sendall(data)
        deadline = time.monotonic() + (timeout or self._timeout)
        while True:
            msg = self._read(deadline)
            if "event" in msg:
                self.events.append(msg)
                continue
            if "error" in msg:
                err = msg["error"]
                desc = err.get("desc", str(err)) if isinstance(err, dict) else str(err)
                raise VMError(STEP, f"qemu refused {command}: {desc}")
            if "return" in msg:
                return msg["return"]

    def wait_event(self, name: str, timeout: float) -> dict[str, Any]:
        """The first event `name` (one already received counts)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("event") == name:
                    return self.events.pop(i)
            msg = self._read(deadline)
            if "event" in msg:
                self.events.append(msg)


@contextmanager
def connect(vm_dir: str, timeout: float = 10.0) -> Iterator[QMP]:
    path = os.path.join(vm_dir, QMP_SOCK)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as e:
            raise VMError(STEP, f"cannot reach qemu's monitor at {path}",
                          f"{e.strerror or e}; is the VM running?") from e
        qmp = QMP(sock, timeout)
        greeting = qmp._read(time.monotonic() + timeout)
        if "QMP" not in greeting:
            raise VMError(STEP, f"{path} is not a QMP monitor")
        qmp.execute("qmp_capabilities")
        yield qmp
    finally:
        sock.close()
