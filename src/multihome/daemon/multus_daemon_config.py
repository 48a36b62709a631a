"""Multus thick's daemon config (`daemon-config.json`), read unchanged.

`multihome daemon --multus-config FILE` takes the file Multus' DaemonSet mounts, so that
swapping Multus for multihome changes no config: the socket is `<socketDir>/multus.sock`
(default /run/multus/), `00-multus.conf` goes to `cniConfigDir`, and, as Multus' server
does, every key of the file is laid over each request's config (so namespaceIsolation,
globalNamespaces, binDir, cniDir, readinessindicatorfile, clusterNetwork/multusMasterCNI,
defaultNetworks, systemNamespaces, multusNamespace and the log keys are node settings).

Keys multihome accepts and ignores: `chrootDir` (Multus runs delegates chrooted into the
host; multihome runs on the host or with the host's paths mounted at the same places, so
every path in the file is used exactly as written: a file written for a pod that sees the
host under /host needs those paths to exist as given), `forceCNIVersion` (Multus rewrites
the primary network's config; multihome never writes another plugin's file),
`perNodeCertificate`, `metricsPort`, `enablePprof`, `connectionLimit` (the daemon's own
options bound its connections). Unknown keys are ignored, as Go's decoder does; a known
key of the wrong type is refused with a one-line error naming the key and the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from multihome.attach.multus_config import parse_multus_config
from multihome.cni.errors import CNIError
from multihome.shim import MULTUS_SOCKET_DIR, multus_socket

DEFAULT_CNI_CONFIG_DIR = "/etc/cni/net.d"  # Multus' default for cniConfigDir
AUTO = "auto"  # multusConfigFile: generate 00-multus.conf from the primary network
MAX_SIZE = 1024 * 1024  # a daemon config is a few hundred bytes

_STRINGS = ("chrootDir", "cniVersion", "logFile", "logLevel", "socketDir", "cniConfigDir",
            "multusAutoconfigDir", "multusConfigFile", "multusMasterCNI", "binDir", "cniDir",
            "readinessindicatorfile", "clusterNetwork", "multusNamespace", "type",
            "auxiliaryCNIChainName", "daemonSocketDir", "name")
_BOOLS = ("logToStderr", "namespaceIsolation", "forceCNIVersion", "overrideNetworkName")
# Multus' log levels -> the daemon's own
_LOG_LEVELS = {"debug": "debug", "verbose": "info", "": "info", "error": "error",
               "panic": "error"}


class DaemonConfigError(ValueError):
    """The daemon config cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class MultusDaemonConfig:
    path: str
    raw: dict[str, Any]

    def _get(self, key: str, default: str = "") -> str:
        value = self.raw.get(key)
        return value if isinstance(value, str) and value else default

    @property
    def socket(self) -> str:
        return multus_socket(self._get("socketDir", MULTUS_SOCKET_DIR))

    @property
    def cni_config_dir(self) -> str:
        return self._get("cniConfigDir", DEFAULT_CNI_CONFIG_DIR)

    @property
    def autoconfig_dir(self) -> str:
        """Where the primary network's config is looked for. Multus has no default (it
        fails without one); multihome falls back to cniConfigDir."""
        return self._get("multusAutoconfigDir", self.cni_config_dir)

    @property
    def auto(self) -> bool:
        """True: 00-multus.conf is generated. Any other value names a file the operator
        provides in cniConfigDir; multihome then writes no config."""
        return self._get("multusConfigFile", AUTO) == AUTO

    @property
    def master_cni(self) -> str:
        """multusMasterCNI: the primary network's file name, instead of the first one."""
        return self._get("multusMasterCNI")

    @property
    def log_level(self) -> str:
        return _LOG_LEVELS.get(self._get("logLevel").lower(), "info")

    @property
    def request_overlay(self) -> dict[str, Any]:
        """Laid over each engine request's config, key by key, as Multus' server does."""
        return dict(self.raw)


def _refuse(path: str, why: str) -> DaemonConfigError:
    return DaemonConfigError(f"{path}: {why}")


def parse(path: str, raw: Any) -> MultusDaemonConfig:
    """Check the types of the keys multihome reads (DaemonConfigError)."""
    if not isinstance(raw, dict):
        raise _refuse(path, f"the Multus daemon config must be a JSON object, "
                            f"not {type(raw).__name__}")
    for key in _STRINGS:
        if raw.get(key) is not None and not isinstance(raw[key], str):  # null: unset, as in Go
            raise _refuse(path, f"{key!r} must be a string, got {json.dumps(raw[key])[:80]}")
    for key in _BOOLS:
        if raw.get(key) is not None and not isinstance(raw[key], bool):
            raise _refuse(path, f"{key!r} must be true or false, "
                                f"got {json.dumps(raw[key])[:80]}")
    caps = raw.get("capabilities") or {}
    if not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values()):
        raise _refuse(path, "'capabilities' must be an object of true/false values")
    if not isinstance(raw.get("logOptions") or {}, dict):
        raise _refuse(path, "'logOptions' must be an object")
    # The engine's keys, checked by the engine's own parser now rather than on each
    # request (clusterNetwork comes from the conf dir when the file has none).
    try:
        parse_multus_config({**raw, "clusterNetwork": raw.get("clusterNetwork") or "-"})
    except CNIError as e:
        raise _refuse(path, e.msg.removeprefix("multus config: ")) from None
    return MultusDaemonConfig(path, dict(raw))


def load(path: str) -> MultusDaemonConfig:
    """Read and check Multus' daemon config at `path` (DaemonConfigError)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIZE + 1)
    except OSError as e:
        raise _refuse(path, f"cannot read the Multus daemon config: "
                            f"{e.strerror or e}") from None
    if len(data) > MAX_SIZE:
        raise _refuse(path, f"the Multus daemon config is larger than {MAX_SIZE} bytes")
    try:
        raw = json.loads(data)
    except RecursionError:
        raise _refuse(path, "the Multus daemon config is JSON nested too deeply") from None
    except ValueError as e:
        raise _refuse(path, f"the Multus daemon config is not JSON: {e}") from None
    return parse(os.fspath(path), raw)
