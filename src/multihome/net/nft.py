"""nftables through `nft -j`: batches of JSON commands in, JSON listings out.

Tables shared between attachments (e.g. `bridge nat`) are created and removed under
one file lock so a DEL removing an empty table cannot race an ADD filling it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from multihome.cni.errors import CNIError

LOCK_PATH = os.environ.get("MULTIHOME_NFT_LOCK", "/run/multihome/nft.lock")

Obj = dict[str, Any]


class NftError(CNIError):
    """nft refused a batch; `details` holds nft's own message."""


def _nft() -> str:
    path = shutil.which("nft") or ("/usr/sbin/nft" if os.path.exists("/usr/sbin/nft") else "")
    if not path:
        raise CNIError("the nft command is not installed: install the nftables package")
    return path


def run(commands: list[Obj], *, what: str = "apply nftables rules") -> None:
    """Apply a batch atomically (`nft -j -f -`): all commands or none."""
    if not commands:
        return
    doc = json.dumps({"nftables": commands})
    proc = subprocess.run([_nft(), "-j", "-f", "-"], input=doc, capture_output=True, text=True)
    if proc.returncode != 0:
        raise NftError(f"cannot {what}", (proc.stderr or proc.stdout).strip())


def list_objects(*target: str) -> list[Obj]:
    """`nft -j list <target...>` as a list of objects (`{"table": …}`, `{"rule": …}` …).

    A missing table or chain gives an empty list.
    """
    proc = subprocess.run([_nft(), "-j", "list", *target], capture_output=True, text=True)
    if proc.returncode != 0:
        msg = (proc.stderr or "").strip()
        if "No such file or directory" in msg or "does not exist" in msg:
            return []
        raise NftError(f"cannot list nftables {' '.join(target)}", msg)
    try:
        items = json.loads(proc.stdout or "{}").get("nftables", [])
    except ValueError as e:
        raise NftError("nft printed invalid JSON", str(e)) from e
    return [i for i in items if "metainfo" not in i]


def table_exists(family: str, name: str) -> bool:
    return any("table" in o for o in list_objects("table", family, name))


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o[kind] for o in objects if kind in o]


@contextmanager
def locked() -> Iterator[None]:
    """Serialise table create/delete across processes (flock on a file under /run)."""
    os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
