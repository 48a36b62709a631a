"""The node's CNI config, written the way Multus's auto-config does.

`00-multihome.conflist` sorts first in the conf dir, so the runtime calls the `multihome`
shim for every pod; its `clusterNetwork` points at the first other config there (the
cluster's own network plugin), which becomes every pod's eth0. The file is rewritten
when that config changes, and deliberately kept when the daemon stops: removing it would
silently give new pods only their primary network. `multihome uninstall` removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass
from typing import Any

from multihome.cni import jsontext
from multihome.cni.errors import CNIError
from multihome.daemon import logs
from multihome.paths import write_file_atomic
from multihome.shim import ENGINE_TYPE, SOCKET_KEY

CONFIG_NAME = "00-multihome.conflist"
# It names the daemon's socket and store; its only readers (runtimes) are root.
CONFIG_MODE = 0o600
NETWORK_NAME = "multihome-cni-network"
_EXTENSIONS = (".conf", ".conflist", ".json")


@dataclass(frozen=True)
class Settings:
    conf_dir: str
    socket: str
    bin_dir: str = ""
    store: str = ""
    cni_dir: str = ""


def default_network_file(conf_dir: str) -> str | None:
    """The first config (by name, as runtimes pick) that is not ours and parses."""
    try:
        names = sorted(os.listdir(conf_dir))
    except FileNotFoundError:
        return None
    for name in names:
        if name == CONFIG_NAME or name.startswith(".") or not name.endswith(_EXTENSIONS):
            continue
        path = os.path.join(conf_dir, name)
        try:
            with open(path, "rb") as f:
                data = jsontext.loads(f.read())
        except (OSError, CNIError):
            continue
        if isinstance(data, dict) and (data.get("type") or isinstance(data.get("plugins"), list)):
            return path
    return None


def _capabilities(default: dict[str, Any]) -> dict[str, bool]:
    """Forward the default network's capabilities, so the runtime passes their args to us."""
    plugins = default.get("plugins") if isinstance(default.get("plugins"), list) else [default]
    caps: dict[str, bool] = {}
    for plugin in plugins or []:
        if isinstance(plugin, dict) and isinstance(plugin.get("capabilities"), dict):
            caps.update({k: True for k, v in plugin["capabilities"].items() if v})
    return caps


def build(settings: Settings, default_path: str) -> dict[str, Any]:
    with open(default_path, "rb") as f:
        default = jsontext.loads(f.read())
    if not isinstance(default, dict):
        raise ValueError(f"{default_path} is not a JSON object")
    plugin: dict[str, Any] = {"type": ENGINE_TYPE, "clusterNetwork": default_path,
                              SOCKET_KEY: settings.socket}
    if settings.bin_dir:
        plugin["binDir"] = settings.bin_dir
    if settings.store:
        plugin["store"] = settings.store
    if settings.cni_dir:
        plugin["cniDir"] = settings.cni_dir
    caps = _capabilities(default)
    if caps:
        plugin["capabilities"] = caps
    version = default.get("cniVersion") or "1.0.0"
    return {"cniVersion": version, "name": NETWORK_NAME, "plugins": [plugin]}


def sync(settings: Settings) -> bool:
    """Write the config when it is missing or stale; True when a default network exists."""
    default_path = default_network_file(settings.conf_dir)
    if default_path is None:
        return False
    try:
        text = json.dumps(build(settings, default_path), indent=2) + "\n"
    except (OSError, ValueError, CNIError):
        return False  # the file changed under us: the next poll sees the new one
    path = os.path.join(settings.conf_dir, CONFIG_NAME)
    try:
        with open(path) as f:
            if f.read() == text:
                if os.fstat(f.fileno()).st_mode & 0o077:
                    os.chmod(path, CONFIG_MODE)  # written by an older, looser version
                return True
    except FileNotFoundError:
        pass
    write_file_atomic(path, text, CONFIG_MODE)
    return True


def _fingerprint(conf_dir: str) -> tuple[tuple[str, int, int], ...]:
    """Names, mtimes and sizes of the configs: cheap to poll, changes when any file does."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(conf_dir):
            if entry.name.endswith(_EXTENSIONS):
                with contextlib.suppress(FileNotFoundError):
                    st = entry.stat()
                    out.append((entry.name, st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


class ConfigWriter:
    """Keeps the config current from a background thread polling the conf dir."""

    def __init__(self, settings: Settings, interval: float = 1.0) -> None:
        self.settings = settings
        self.interval = interval
        self.ready = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="autoconf", daemon=True)
        self._seen: tuple[tuple[str, int, int], ...] | None = None

    def poll(self) -> None:
        seen = _fingerprint(self.settings.conf_dir)
        if seen != self._seen:
            self.ready = sync(self.settings)
            self._seen = _fingerprint(self.settings.conf_dir)  # includes our own write

    def start(self) -> None:
        os.makedirs(self.settings.conf_dir, exist_ok=True)
        self.poll()
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as e:  # the thread must outlive any one bad poll
                logs.log(30, "cannot update the CNI config", error=f"{type(e).__name__}: {e}")
                self._seen = None  # try again next time

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)  # a poll is a few file operations


def remove(conf_dir: str) -> bool:
    try:
        os.unlink(os.path.join(conf_dir, CONFIG_NAME))
    except FileNotFoundError:
        return False
    return True
