"""The node's CNI config, written the way Multus's auto-config does.

`00-multihome.conflist` sorts first in the conf dir, so the runtime calls the `multihome`
shim for every pod; its `clusterNetwork` points at the first other config there (the
cluster's own network plugin), which becomes every pod's eth0. The file is rewritten
when that config changes, and deliberately kept when the daemon stops: removing it would
silently give new pods only their primary network. `multihome uninstall` removes it.

With Multus' daemon config (`daemon --multus-config`) the file is Multus' own instead:
`00-multus.conf` in cniConfigDir, in the format Multus 4's generator writes (type
`multus-shim`, its keys in its order, compact JSON), its clusterNetwork the first
`.conf`/`.conflist` in multusAutoconfigDir (or multusMasterCNI there).
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
from multihome.daemon.multus_daemon_config import MultusDaemonConfig
from multihome.paths import write_file_atomic
from multihome.shim import ENGINE_TYPE, ENGINE_TYPES, SOCKET_KEY

CONFIG_NAME = "00-multihome.conflist"
# It names the daemon's socket and store; its only readers (runtimes) are root.
CONFIG_MODE = 0o600
NETWORK_NAME = "multihome-cni-network"
MULTUS_CONFIG_NAME = "00-multus.conf"
MULTUS_NETWORK_NAME = "multus-cni-network"
MULTUS_SHIM_TYPE = "multus-shim"
_EXTENSIONS = (".conf", ".conflist", ".json")


@dataclass(frozen=True)
class Settings:
    conf_dir: str
    socket: str
    bin_dir: str = ""
    store: str = ""
    cni_dir: str = ""
    # Multus' daemon config: write 00-multus.conf as Multus would, not our conflist
    multus: MultusDaemonConfig | None = None

    @property
    def watched_dirs(self) -> tuple[str, ...]:
        """Where the primary network's config is looked for, and where ours is written."""
        if self.multus is not None:
            return (self.multus.autoconfig_dir, self.conf_dir)
        return (self.conf_dir,)


def _runs_the_engine(data: dict[str, Any]) -> bool:
    """A config of the engine's own types (ours, or Multus' left on the node): as the
    default network, every pod's ADD would call the engine again from inside itself."""
    plugins = data.get("plugins")
    parts = plugins if isinstance(plugins, list) else [data]
    return any(isinstance(p, dict) and p.get("type") in ENGINE_TYPES for p in parts)


def default_network_file(conf_dir: str) -> str | None:
    """The first config (by name, as runtimes pick) that is not the engine's and parses."""
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
        if isinstance(data, dict) and (data.get("type") or isinstance(
                data.get("plugins"), list)) and not _runs_the_engine(data):
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


def multus_primary_file(multus: MultusDaemonConfig) -> str | None:
    """The primary network's config as Multus picks it: multusMasterCNI, else the first
    `.conf`/`.conflist` by name in multusAutoconfigDir that is not `00-multus*`."""
    name = multus.master_cni
    if not name:
        try:
            names = sorted(n for n in os.listdir(multus.autoconfig_dir)
                           if not n.startswith("00-multus")
                           and os.path.splitext(n)[1] in (".conf", ".conflist"))
        except OSError:
            return None
        if not names:
            return None
        name = names[0]
    path = os.path.normpath(os.path.join(multus.autoconfig_dir, name))  # as Go's Join
    if path == os.path.normpath(os.path.join(multus.autoconfig_dir, MULTUS_CONFIG_NAME)):
        return None  # Multus refuses this recursion too
    return path


def build_multus(multus: MultusDaemonConfig, primary_path: str) -> dict[str, Any]:
    """00-multus.conf as Multus 4's generator writes it for this daemon config: the
    generator's keys in its struct order, empty ones left out (Go's `omitempty`), the
    daemon-only keys (cniConfigDir, multusConfigFile, multusAutoconfigDir,
    multusMasterCNI, forceCNIVersion, readinessindicatorfile) cleared."""
    with open(primary_path, "rb") as f:
        primary = jsontext.loads(f.read())
    if not isinstance(primary, dict):
        raise ValueError(f"{primary_path} is not a JSON object")
    if _runs_the_engine(primary):
        raise ValueError(f"{primary_path} runs the engine itself; it cannot be the default")
    raw = multus.raw
    caps: dict[str, bool] = dict(raw.get("capabilities") or {})
    caps.update(_capabilities(primary))
    name = MULTUS_NETWORK_NAME
    if raw.get("overrideNetworkName"):
        if not isinstance(primary.get("name"), str) or not primary["name"]:
            raise ValueError(f"{primary_path} has no network name to take")
        name = primary["name"]
    namespaces = raw.get("globalNamespaces")
    if isinstance(namespaces, list):  # the engine takes a list; Multus' field is a string
        namespaces = ",".join(namespaces)
    fields: list[tuple[str, Any, bool]] = [  # (key, value, always written)
        ("binDir", raw.get("binDir"), False),
        ("capabilities", dict(sorted(caps.items())), False),  # Go sorts a map's keys
        ("cniVersion", raw.get("cniVersion", ""), True),
        ("logFile", raw.get("logFile"), False),
        ("logLevel", raw.get("logLevel"), False),
        ("logToStderr", raw.get("logToStderr"), False),
        ("logOptions", raw.get("logOptions"), raw.get("logOptions") is not None),
        ("name", name, True),
        ("clusterNetwork", primary_path, False),
        ("namespaceIsolation", raw.get("namespaceIsolation"), False),
        ("globalNamespaces", namespaces, False),
        ("type", raw.get("type") or MULTUS_SHIM_TYPE, True),
        ("cniDir", raw.get("cniDir"), False),
        ("auxiliaryCNIChainName", raw.get("auxiliaryCNIChainName"), False),
        ("daemonSocketDir", raw.get("daemonSocketDir"), False),
        ("overrideNetworkName", raw.get("overrideNetworkName"), False),
    ]
    return {key: value for key, value, always in fields if always or value}


def _sync_multus(settings: Settings, multus: MultusDaemonConfig) -> bool:
    if not multus.auto:
        return True  # the operator's own 00-multus.conf: nothing to write
    primary = multus_primary_file(multus)
    if primary is None:
        return False
    try:
        # compact, as Go's json.Marshal writes it
        text = json.dumps(build_multus(multus, primary), separators=(",", ":"))
    except (OSError, ValueError, CNIError):
        return False  # missing or not (yet) JSON: the next poll sees the new one
    _write_if_changed(os.path.join(settings.conf_dir, MULTUS_CONFIG_NAME), text)
    return True


def sync(settings: Settings) -> bool:
    """Write the config when it is missing or stale; True when a default network exists."""
    if settings.multus is not None:
        return _sync_multus(settings, settings.multus)
    default_path = default_network_file(settings.conf_dir)
    if default_path is None:
        return False
    try:
        text = json.dumps(build(settings, default_path), indent=2) + "\n"
    except (OSError, ValueError, CNIError):
        return False  # the file changed under us: the next poll sees the new one
    _write_if_changed(os.path.join(settings.conf_dir, CONFIG_NAME), text)
    return True


def _write_if_changed(path: str, text: str) -> None:
    try:
        with open(path) as f:
            if f.read() == text:
                if os.fstat(f.fileno()).st_mode & 0o077:
                    os.chmod(path, CONFIG_MODE)  # written by an older, looser version
                return
    except FileNotFoundError:
        pass
    write_file_atomic(path, text, CONFIG_MODE)


def _fingerprint(dirs: tuple[str, ...]) -> tuple[tuple[str, int, int], ...]:
    """Names, mtimes and sizes of the configs: cheap to poll, changes when any file does."""
    out = []
    for conf_dir in dict.fromkeys(dirs):
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(conf_dir):
                if entry.name.endswith(_EXTENSIONS):
                    with contextlib.suppress(FileNotFoundError):
                        st = entry.stat()
                        out.append((entry.path, st.st_mtime_ns, st.st_size))
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
        seen = _fingerprint(self.settings.watched_dirs)
        if seen != self._seen:
            self.ready = sync(self.settings)
            self._seen = _fingerprint(self.settings.watched_dirs)  # includes our own write

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
