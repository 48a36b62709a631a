"""The host side of the guest's command loop on ttyS1 (see init_script for the framing)."""

from __future__ import annotations

import base64
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from multihome.vm.errors import VMError
from multihome.vm.init_script import BEGIN, END, STDERR
from multihome.vm.qemu import AGENT_SOCK


@dataclass(frozen=True)
class ExecResult:
    rc: int
    stdout: bytes
    stderr: bytes

    @property
    def output(self) -> bytes:
        """Both streams, stdout first (for messages; the interleaving is not kept)."""
        return self.stdout + self.stderr


def run(vm_dir: str, script: str, timeout: float = 60.0) -> ExecResult:
    """Run `script` with the guest's sh; its stdout, stderr and exit code come back apart."""
    req_id = secrets.token_hex(4)
    line = f"{req_id} {base64.b64encode(script.encode()).decode()}\n".encode()
    path = os.path.join(vm_dir, AGENT_SOCK)
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(line)
            return _read_reply(sock, req_id, deadline)
    except TimeoutError as e:
        raise VMError("exec", f"the guest did not answer within {timeout:.0f} s") from e
    except OSError as e:
        raise VMError("exec", f"cannot reach the guest agent at {path}",
                      f"{e.strerror or e}; is the VM running?") from e


def _read_reply(sock: socket.socket, req_id: str, deadline: float) -> ExecResult:
    buf = b""
    # base64 lines of the stream being received: stdout after BEGIN, stderr after STDERR
    streams: dict[str, list[bytes]] = {}
    body: list[bytes] | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise VMError("exec", "the guest agent closed the connection")
        buf += chunk
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            text = raw.strip()
            if text == f"{BEGIN} {req_id}".encode():
                body = streams["stdout"] = []
                streams.pop("stderr", None)
            elif text == f"{STDERR} {req_id}".encode() and body is not None:
                body = streams["stderr"] = []
            elif text.startswith(f"{END} {req_id} ".encode()) and body is not None:
                return ExecResult(_exit_code(text),
                                  *(_decode(streams.get(k, [])) for k in ("stdout", "stderr")))
            elif body is not None:
                body.append(text)


def _exit_code(end_line: bytes) -> int:
    try:
        return int(end_line.split()[2])
    except (IndexError, ValueError) as e:
        raise VMError("exec", f"the guest agent sent a bad end line: {end_line[:80]!r}") from e


def _decode(lines: list[bytes]) -> bytes:
    try:
        return base64.b64decode(b"".join(lines), validate=True)
    except ValueError as e:
        raise VMError("exec", "the guest agent sent output that is not base64",
                      str(e)) from e


def wait_ready(vm_dir: str, deadline: float, alive: Callable[[], str]) -> None:
    """Poll the agent until it answers; `alive` returns "" or why the VM cannot come up."""
    while True:
        why = alive()
        if why:
            raise VMError("boot", why)
        left = deadline - time.monotonic()
        if left <= 0:
            raise VMError("boot", "the guest did not come up in time",
                          "see console.log in the VM's state dir")
        try:
            if run(vm_dir, "true", timeout=min(3.0, left)).rc == 0:
                return
        except VMError:
            time.sleep(0.5)
