"""The base of multihome's own errors.

Every layer raises a subclass with a sentence a person can act on (`msg`) and what the
system said (`details`). Only the CNI edge (plugins, the engine, skel) speaks in CNI codes:
:class:`multihome.cni.errors.CNIError` is the subclass that carries one. Node and VM
errors are not CNI errors; the CLI and the console catch :class:`MultihomeError` and
print ``str(error)`` for both kinds alike.
"""

from __future__ import annotations


class MultihomeError(Exception):
    """A failure with a sentence a person can act on, and optional details."""

    def __init__(self, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg
