"""Per-attachment JSON state a plugin must find again at DEL (original values to restore).

One file `<dataDir>/<containerID>-<ifname>.json`, written atomically, so a crash never
leaves half a file that would make DEL restore garbage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from multihome.cni.errors import CNIError
from multihome.paths import read_bounded, write_file_atomic


def path(data_dir: str, container_id: str, ifname: str) -> Path:
    return Path(data_dir) / f"{container_id}-{ifname}.json"


def save(data_dir: str, container_id: str, ifname: str, state: dict[str, Any]) -> None:
    target = path(data_dir, container_id, ifname)
    try:
        # State files hold device details: root's alone (0600 in a 0700 directory).
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file_atomic(target, json.dumps(state), 0o600)
    except OSError as e:
        raise CNIError(f"cannot save the original settings in {target}", str(e)) from e


def load(data_dir: str, container_id: str, ifname: str) -> dict[str, Any] | None:
    """The saved state; None when there is none (ADD never got that far, or DEL ran)."""
    target = path(data_dir, container_id, ifname)
    try:
        state = json.loads(read_bounded(target))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise CNIError(f"cannot read the saved settings in {target}", str(e)) from e
    return state if isinstance(state, dict) else None


def remove(data_dir: str, container_id: str, ifname: str) -> None:
    path(data_dir, container_id, ifname).unlink(missing_ok=True)
