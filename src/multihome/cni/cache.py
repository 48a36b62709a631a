"""The result cache, in libcni's on-disk layout so that either side can read the other's.

`<dir>/results/<network>-<containerID>-<ifname>` holds
`{"kind": "cniCacheV1", "containerId", "config" (base64 of the conf/conflist bytes),
"ifName", "networkName", "netns", "cniArgs": [[k, v]...], "capabilityArgs", "result"}`.
Old libcni wrote the bare result JSON instead; `load` reads that too. Writes go to a
temporary file that is renamed into place, so a crash never leaves half a file that
would break the DEL that needs it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from multihome.cni import jsontext
from multihome.cni.errors import DecodingFailure, InvalidConfig, IOFailure
from multihome.paths import read_bounded, write_file_atomic

DEFAULT_CACHE_DIR = "/var/lib/cni"
KIND_V1 = "cniCacheV1"


@dataclass
class CacheEntry:
    """One attachment as the runtime last set it up."""

    network_name: str
    container_id: str
    ifname: str
    config: bytes = b""
    result: dict[str, Any] | None = None
    netns: str = ""
    cni_args: list[tuple[str, str]] = field(default_factory=list)
    capability_args: dict[str, Any] = field(default_factory=dict)
    kind: str = KIND_V1  # "" for a legacy bare-result file

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": KIND_V1,
            "containerId": self.container_id,
            "config": base64.b64encode(self.config).decode("ascii"),
            "ifName": self.ifname,
            "networkName": self.network_name,
        }
        # libcni omits these when empty (`omitempty`)
        if self.netns:
            out["netns"] = self.netns
        if self.cni_args:
            out["cniArgs"] = [[k, v] for k, v in self.cni_args]
        if self.capability_args:
            out["capabilityArgs"] = self.capability_args
        if self.result is not None:
            out["result"] = self.result
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> CacheEntry:
        def text(key: str) -> str:
            value = data.get(key) or ""
            if not isinstance(value, str):
                raise DecodingFailure(f"cache file {where}: {key!r} must be a string")
            return value

        raw_config = text("config")
        try:
            config = base64.b64decode(raw_config, validate=True)
        except (binascii.Error, ValueError) as e:
            raise DecodingFailure(f"cache file {where}: 'config' is not base64") from e
        args = data.get("cniArgs") or []
        if not isinstance(args, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
            for p in args
        ):
            raise DecodingFailure(f"cache file {where}: 'cniArgs' must be a list of [key, value]")
        caps = data.get("capabilityArgs") or {}
        result = data.get("result")
        if not isinstance(caps, dict) or (result is not None and not isinstance(result, dict)):
            raise DecodingFailure(f"cache file {where}: 'capabilityArgs' and 'result' must be "
                                  "objects")
        return cls(
            network_name=text("networkName"),
            container_id=text("containerId"),
            ifname=text("ifName"),
            config=config,
            result=result,
            netns=text("netns"),
            cni_args=[(k, v) for k, v in args],
            capability_args=caps,
        )


def cache_path(cache_dir: str, network_name: str, container_id: str, ifname: str) -> str:
    if not (network_name and container_id and ifname):
        raise InvalidConfig(
            "a cache entry needs the network name, container ID and interface name, got "
            f"{network_name!r}, {container_id!r}, {ifname!r}"
        )
    for part in (network_name, container_id, ifname):
        if "/" in part or part in (".", ".."):
            raise InvalidConfig(f"{part!r} cannot be part of a cache file name")
    return os.path.join(cache_dir, "results", f"{network_name}-{container_id}-{ifname}")


def private_dir(directory: str) -> None:
    """Make `directory` (and any missing parent) mode 0700; tighten it if it is looser.

    Cached results name the pod's addresses, devices and arguments: root's only.
    """
    missing: list[str] = []
    head = os.path.abspath(directory)
    while not os.path.isdir(head):
        missing.append(head)
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    if os.stat(directory).st_mode & 0o077:
        os.chmod(directory, 0o700)


def write_private(path: str, data: bytes) -> None:
    """Write `data` to `path` atomically as a 0600 file in a 0700 directory.

    Not fsync'ed (as libcni does not): a daemon that crashes or restarts reads it from
    the page cache; a kernel crash takes every pod's namespace with it, and the runtime
    cleans up after a reboot by DEL and GC, which work without a cache entry. An fsync
    per attachment cost an ADD a disk flush (1-5 ms here) on its critical path."""
    private_dir(os.path.dirname(path))
    write_file_atomic(path, data, 0o600)


def save(cache_dir: str, entry: CacheEntry) -> str:
    """Write `entry` atomically; returns the file path."""
    path = cache_path(cache_dir, entry.network_name, entry.container_id, entry.ifname)
    try:
        write_private(path, json.dumps(entry.to_json()).encode())
    except OSError as e:
        raise IOFailure(f"cannot write CNI cache file {path}", str(e)) from e
    return path


def _read(path: str) -> CacheEntry | None:
    try:
        raw = read_bounded(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise IOFailure(f"cannot read CNI cache file {path}", str(e)) from e
    data = jsontext.loads(raw, f"cache file {path}")
    if not isinstance(data, dict):
        raise DecodingFailure(f"cache file {path} does not hold a JSON object")
    if data.get("kind") == KIND_V1:
        return CacheEntry.from_json(data, path)
    # legacy libcni (< 0.7): the file is the bare result
    return CacheEntry(network_name="", container_id="", ifname="", result=data, kind="")


def load(cache_dir: str, network_name: str, container_id: str,
         ifname: str) -> CacheEntry | None:
    """The cached attachment, or None when there is none. Raises on a corrupt file."""
    entry = _read(cache_path(cache_dir, network_name, container_id, ifname))
    if entry is not None and not entry.kind:
        entry.network_name, entry.container_id, entry.ifname = (
            network_name, container_id, ifname)
    return entry


def delete(cache_dir: str, network_name: str, container_id: str, ifname: str) -> bool:
    """Remove the entry; False when it was not there."""
    path = cache_path(cache_dir, network_name, container_id, ifname)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise IOFailure(f"cannot remove CNI cache file {path}", str(e)) from e
    return True


def list_entries(cache_dir: str, container_id: str | None = None) -> list[CacheEntry]:
    """Every readable cniCacheV1 entry (libcni's GetCachedAttachments), sorted by file name.

    Unreadable, legacy and incomplete files are skipped, as libcni skips them.
    """
    directory = os.path.join(cache_dir, "results")
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise IOFailure(f"cannot list CNI cache directory {directory}", str(e)) from e
    entries: list[CacheEntry] = []
    for name in names:
        if name.startswith(".tmp-"):
            continue
        if container_id and f"-{container_id}-" not in name:
            continue
        try:
            entry = _read(os.path.join(directory, name))
        except (DecodingFailure, IOFailure):
            continue
        if entry is None or not entry.kind or not entry.ifname or not entry.network_name:
            continue
        if container_id and entry.container_id != container_id:
            continue
        entries.append(entry)
    return entries
