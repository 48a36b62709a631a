"""The engine's own configuration, read from a Multus config (`00-multus.conf` keys).

An existing Multus configuration works unchanged: every key keeps its Multus name.
multihome's additions: `store` (the path of the local store, in place of Multus'
`kubeconfig`), and `kubeletCheckpointFile` / `deviceInfoDir` (where device-plugin
allocations and device-info files are read; the kubelet's and the Device Info spec's
paths by default, which Multus has built in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multihome.attach.devices import DEVICE_INFO_DIR, KUBELET_CHECKPOINT
from multihome.cni.errors import InvalidConfig
from multihome.cni.runtime import Executor
from multihome.plugins.registry import IN_PROCESS

DEFAULT_MULTUS_NAMESPACE = "kube-system"
DEFAULT_SYSTEM_NAMESPACES = ("kube-system",)
DEFAULT_CONF_DIR = "/etc/cni/multus/net.d"
DEFAULT_CNI_DIR = "/var/lib/cni/multus"
DEFAULT_BIN_DIR = "/opt/cni/bin"
# Multus treats "default" as global even when globalNamespaces does not list it.
ALWAYS_GLOBAL = "default"
LOG_LEVELS = ("debug", "verbose", "error", "panic", "")


@dataclass(frozen=True)
class MultusConfig:
    """Typed view of a Multus configuration."""

    name: str = "multus-cni-network"
    cni_version: str = "1.0.0"
    cluster_network: str = ""
    # Legacy form: inline delegate configs; the first one is the cluster network.
    delegates: tuple[dict[str, Any], ...] = ()
    default_networks: tuple[str, ...] = ()
    multus_namespace: str = DEFAULT_MULTUS_NAMESPACE
    system_namespaces: tuple[str, ...] = DEFAULT_SYSTEM_NAMESPACES
    namespace_isolation: bool = False
    global_namespaces: tuple[str, ...] = ()
    conf_dir: str = DEFAULT_CONF_DIR
    cni_dir: str = DEFAULT_CNI_DIR
    bin_dirs: tuple[str, ...] = (DEFAULT_BIN_DIR,)
    readiness_indicator_file: str = ""
    retry_delete_on_error: bool = False
    log_level: str = ""
    log_file: str = ""
    log_to_stderr: bool = False
    store: str = ""
    kubelet_checkpoint_file: str = KUBELET_CHECKPOINT
    device_info_dir: str = DEVICE_INFO_DIR
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # not a config key: what runs each delegate (libcni's CNIConfig{Exec}); tests inject
    # a fake, the daemon a wrapper that times every call
    executor: Executor = field(default=IN_PROCESS, compare=False, repr=False)

    def is_global(self, namespace: str) -> bool:
        return namespace == ALWAYS_GLOBAL or namespace in self.global_namespaces


def _str(raw: dict[str, Any], key: str, default: str) -> str:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidConfig(f"multus config: {key!r} must be a string, got {value!r}")
    return value


def _bool(raw: dict[str, Any], key: str, default: bool = False) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise InvalidConfig(f"multus config: {key!r} must be true or false, got {value!r}")
    return value


def _names(raw: dict[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A list of names, also accepted as Multus' comma-separated string."""
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise InvalidConfig(
        f"multus config: {key!r} must be a list of names or a comma-separated string, "
        f"got {value!r}"
    )


def _delegates(raw: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    value = raw.get("delegates")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
        raise InvalidConfig("multus config: 'delegates' must be a list of CNI configs (objects)")
    for i, d in enumerate(value):
        if not d.get("type") and not isinstance(d.get("plugins"), list):
            raise InvalidConfig(
                f"multus config: delegates[{i}] has neither 'type' nor 'plugins'"
            )
    return tuple(value)


def parse_multus_config(raw: Any) -> MultusConfig:
    """Validate a Multus config object; errors are InvalidConfig (code 7)."""
    if not isinstance(raw, dict):
        raise InvalidConfig("multus config must be a JSON object")
    cluster = _str(raw, "clusterNetwork", "")
    delegates = _delegates(raw)
    if not cluster and not delegates:
        raise InvalidConfig(
            "multus config needs 'clusterNetwork' (a network name or config path) or "
            "'delegates' (a list of CNI configs) for the default network"
        )
    bin_dir = _str(raw, "binDir", "")
    bin_dirs = tuple(p for p in bin_dir.split(":") if p) or (DEFAULT_BIN_DIR,)
    level = _str(raw, "logLevel", "")
    if level.lower() not in LOG_LEVELS:
        raise InvalidConfig(
            f"multus config: logLevel {level!r} is not one of debug, verbose, error, panic"
        )
    # `allowTryDeleteOnErr` is the key's older Multus spelling.
    retry = _bool(raw, "retryDeleteOnError", bool(raw.get("allowTryDeleteOnErr", False)))
    multus_ns = _str(raw, "multusNamespace", DEFAULT_MULTUS_NAMESPACE) or DEFAULT_MULTUS_NAMESPACE
    return MultusConfig(
        name=_str(raw, "name", "multus-cni-network") or "multus-cni-network",
        cni_version=_str(raw, "cniVersion", "1.0.0") or "1.0.0",
        cluster_network=cluster,
        delegates=delegates,
        default_networks=_names(raw, "defaultNetworks", ()),
        multus_namespace=multus_ns,
        system_namespaces=_names(raw, "systemNamespaces", DEFAULT_SYSTEM_NAMESPACES),
        namespace_isolation=_bool(raw, "namespaceIsolation"),
        global_namespaces=_names(raw, "globalNamespaces", ()),
        conf_dir=_str(raw, "confDir", DEFAULT_CONF_DIR) or DEFAULT_CONF_DIR,
        cni_dir=_str(raw, "cniDir", DEFAULT_CNI_DIR) or DEFAULT_CNI_DIR,
        bin_dirs=bin_dirs,
        readiness_indicator_file=_str(raw, "readinessindicatorfile", ""),
        retry_delete_on_error=retry,
        log_level=level.lower(),
        log_file=_str(raw, "logFile", ""),
        log_to_stderr=_bool(raw, "logToStderr"),
        # Multus' own `kubeconfig` key selects the Kubernetes API store (multihome.k8s)
        store=_str(raw, "store", "") or (f"k8s:{_str(raw, 'kubeconfig', '')}"
                                         if _str(raw, "kubeconfig", "") else ""),
        kubelet_checkpoint_file=_str(raw, "kubeletCheckpointFile", KUBELET_CHECKPOINT)
        or KUBELET_CHECKPOINT,
        device_info_dir=_str(raw, "deviceInfoDir", DEVICE_INFO_DIR) or DEVICE_INFO_DIR,
        raw=dict(raw),
    )
