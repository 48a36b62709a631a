"""The one error type of the VM layer: which step failed, and what to do about it."""

from __future__ import annotations

from multihome.errors import MultihomeError


class VMError(MultihomeError):
    """A VM operation failed; `step` names the stage (pod, binding, guest, qemu, boot)."""

    def __init__(self, step: str, msg: str, details: str = "") -> None:
        super().__init__(f"{step}: {msg}", details)
        self.step = step
