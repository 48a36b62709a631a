"""`vm console`: the terminal joined to the guest's ttyS0 socket until Ctrl-]."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys
import termios
import tty
from collections.abc import Iterator

from multihome.vm.errors import VMError
from multihome.vm.qemu import CONSOLE_SOCK

ESCAPE = b"\x1d"  # Ctrl-]


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def attach(vm_dir: str) -> None:
    path = os.path.join(vm_dir, CONSOLE_SOCK)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise VMError("console", f"cannot connect to the console at {path}",
                      f"{e.strerror or e}; is the VM running?") from e
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    if os.isatty(stdin):
        os.write(stdout, b"connected to the serial console; Ctrl-] leaves\r\n")
    with sock, _raw(stdin):
        sock.sendall(b"\n")  # a fresh prompt
        stdin_open = True
        while True:
            watch = [sock, stdin] if stdin_open else [sock]
            # once piped input has ended, leave after two quiet seconds
            ready, _, _ = select.select(watch, [], [], None if stdin_open else 2.0)
            if not ready:
                return
            if sock in ready:
                data = sock.recv(4096)
                if not data:
                    return
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 1024)
                if not data:
                    stdin_open = False  # piped input ended: keep showing output
                    continue
                if ESCAPE in data:
                    sock.sendall(data.split(ESCAPE, 1)[0])
                    return
                sock.sendall(data)
