"""NetworkAttachmentDefinitions: validation, and the CNI config a NAD stands for.

Resolution follows Multus: ``spec.config`` (a single config or a conflist) when set, else
the config file in the CNI conf dir whose ``name`` is the NAD's name; a config without
``name`` gets the NAD's name. Validation follows the net-attach-def admission controller,
so `apply`, `create` and (later) the webhook refuse the same things with the same words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multihome.cni import jsontext
from multihome.cni.errors import CNIError, InvalidConfig
from multihome.cni.types import NetConf
from multihome.shim import ENGINE_TYPES
from multihome.store import NAD, Object, Store

RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
NODE_SELECTOR_ANNOTATION = "k8s.v1.cni.cncf.io/nodeSelector"
CONF_EXTENSIONS = (".conf", ".conflist", ".json")  # what libcni.ConfFiles lists

_NAME_MAX = 63

# Engine-level keys (Multus' and ours) that name paths or node settings. They come from
# the node's own engine config only: a network's config that sets them would have the
# root daemon write logs, caches or stores where the network's author says.
NODE_SETTINGS = ("binDir", "cniConfigDir", "cniDir", "clusterNetwork", "confDir",
                 "daemonSocketDir", "deviceInfoDir", "kubeconfig", "kubeletCheckpointFile",
                 "logFile", "multusAutoconfigDir", "multusConfigFile",
                 "readinessindicatorfile", "socketDir", "socketPath", "store")


class InvalidNAD(InvalidConfig):
    """A NAD that admission would refuse."""


def _qualified(obj: Object) -> str:
    return f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name


def validate_nad_name(name: str) -> None:
    from multihome.attach.selection import DNS1123_LABEL_RE

    if len(name) > _NAME_MAX:
        raise InvalidNAD(f'NetworkAttachmentDefinition name "{name}" is longer than '
                         f"{_NAME_MAX} characters")
    if not DNS1123_LABEL_RE.match(name):
        raise InvalidNAD(
            f'NetworkAttachmentDefinition name "{name}" is not a DNS-1123 label: use lower case '
            "letters, digits and '-', starting and ending with a letter or digit"
        )


def validate_config_text(text: str, where: str) -> dict[str, Any] | None:
    """Check a ``spec.config`` string; returns the parsed config, None when empty."""
    if not text.strip():
        return None
    try:
        conf = jsontext.loads(text, "spec.config")
    except CNIError as e:
        raise InvalidNAD(f"{where}: {e.msg}" + (f" ({e.details})" if e.details else "")
                         ) from None
    if not isinstance(conf, dict):
        raise InvalidNAD(f"{where}: spec.config must be a JSON object")
    try:
        if "plugins" in conf:
            plugins = conf["plugins"]
            if not isinstance(plugins, list) or not plugins:
                raise InvalidNAD(f'{where}: spec.config "plugins" must be a non-empty list')
            version = conf.get("cniVersion", "")
            for i, plugin in enumerate(plugins, 1):
                if not isinstance(plugin, dict) or not plugin.get("type"):
                    raise InvalidNAD(f'{where}: spec.config plugin {i} has no "type"')
                NetConf.from_dict({"cniVersion": version, **plugin}, need_name=False)
        elif not conf.get("type"):
            raise InvalidNAD(f'{where}: spec.config has neither "type" nor "plugins"')
        else:
            NetConf.from_dict(conf, need_name=False)
    except InvalidNAD:
        raise
    except CNIError as e:
        raise InvalidNAD(f"{where}: spec.config is not a valid CNI config: {e}") from None
    return conf


def validate_nad(obj: Object) -> None:
    """Refuse what the net-attach-def admission controller refuses, with one clear sentence."""
    validate_nad_name(obj.name)
    where = f"NetworkAttachmentDefinition {_qualified(obj)}"
    resource = (obj.metadata.get("annotations") or {}).get(RESOURCE_NAME_ANNOTATION)
    if resource is not None and not resource.strip():
        raise InvalidNAD(f"{where}: annotation {RESOURCE_NAME_ANNOTATION} is empty")
    spec = obj.body.get("spec", {})
    if spec is None:
        return
    if not isinstance(spec, dict):
        raise InvalidNAD(f"{where}: spec must be a mapping")
    text = spec.get("config", "")
    if text is None:
        return
    if not isinstance(text, str):
        raise InvalidNAD(f"{where}: spec.config must be a string holding JSON (quote it in "
                         f"YAML), not a {type(text).__name__}")
    conf = validate_config_text(text, where)
    problem = delegate_config_problem(conf) if conf is not None else None
    if problem:
        raise InvalidNAD(f"{where}: {problem}")
    for plugin in _plugins_of(conf):
        problem = plugin_config_problem(plugin)
        if problem:
            raise InvalidNAD(f"{where}: {problem}")


def _plugins_of(conf: dict[str, Any] | None) -> list[dict[str, Any]]:
    if conf is None:
        return []
    if "plugins" not in conf:
        return [conf]
    version = conf.get("cniVersion", "")
    return [{"cniVersion": version, "name": conf.get("name", ""), **p} for p in conf["plugins"]]


def delegate_config_problem(conf: dict[str, Any]) -> str | None:
    """Why `conf` (a single config or a conflist) cannot be a delegate of the engine.

    Admission and ADD both ask. Two things are refused: the engine itself as a delegate
    (each nested engine runs its delegates on the same fixed pool as its parent), and
    the engine's node settings (NODE_SETTINGS) at the top of the config or of a plugin.
    """
    plugins = conf.get("plugins")
    parts = [conf, *(p for p in plugins if isinstance(p, dict))] if isinstance(
        plugins, list) else [conf]
    for part in parts:
        if part.get("type") in ENGINE_TYPES:
            return (f"a delegate of type {part.get('type')!r} (the attachment engine itself) is "
                    "not supported: select its networks directly")
        for key in NODE_SETTINGS:
            if key in part:
                return (f"key {key!r} is a node setting of the multihome engine, taken from "
                        "the node's own config only; a network's config may not set it")
    return None


def plugin_config_problem(conf: dict[str, Any]) -> str | None:
    """What a built-in plugin's own config parser says about `conf` (None: it parses).

    Admission runs the parser the plugin runs at ADD, so a VLAN ID out of range is refused
    when the NAD is applied, not when the first pod uses it. Only the config is read:
    the parse is CHECK-shaped and touches no kernel state.
    """
    import importlib

    from multihome.cni.skel import Call
    from multihome.cni.types import CmdArgs
    from multihome.plugins.registry import BUILTIN

    module_name = BUILTIN.get(str(conf.get("type", "")))
    if module_name is None:
        return None  # a third-party plugin: its own binary judges its config
    module = importlib.import_module(module_name)
    parse = getattr(module, "parse", None)
    if parse is None:
        return None
    try:
        parse(Call(CmdArgs(command="CHECK", ifname="net1"), NetConf.from_dict(conf,
                                                                           need_name=False)))
    except CNIError as e:
        return e.msg
    return None


def resource_name(nad: Object) -> str | None:
    """The device-plugin resource the NAD asks for (`k8s.v1.cni.cncf.io/resourceName`)."""
    ann = nad.metadata.get("annotations") or {}
    value = ann.get(RESOURCE_NAME_ANNOTATION)
    return (value.strip() or None) if isinstance(value, str) else None


def is_conflist(conf: dict[str, Any]) -> bool:
    return "plugins" in conf


def _load_file(path: Path) -> dict[str, Any] | None:
    try:
        conf = jsontext.loads(path.read_bytes())
    except (OSError, CNIError):
        return None  # libcni skips unreadable files when searching by name too
    return conf if isinstance(conf, dict) else None


def find_conf_by_name(conf_dir: str | Path, name: str) -> dict[str, Any] | None:
    """The first config (sorted by file name) in ``conf_dir`` whose ``name`` is ``name``."""
    directory = Path(conf_dir)
    try:
        files = sorted(p for p in directory.iterdir()
                       if p.suffix in CONF_EXTENSIONS and p.is_file())
    except OSError:
        return None
    for path in files:
        conf = _load_file(path)
        if conf is not None and conf.get("name") == name:
            return conf
    return None


def nad_config_from_object(nad: Object, conf_dir: str | Path | None) -> dict[str, Any]:
    """The CNI config (single or conflist) the NAD stands for, with ``name`` filled in."""
    where = f"NetworkAttachmentDefinition {_qualified(nad)}"
    spec = nad.body.get("spec") or {}
    text = spec.get("config", "") if isinstance(spec, dict) else ""
    if not isinstance(text, str):
        raise InvalidNAD(f"{where}: spec.config must be a string holding JSON")
    conf = validate_config_text(text, where) if text else None
    if conf is None:
        found = find_conf_by_name(conf_dir, nad.name) if conf_dir else None
        if found is None:
            looked = f" and no config named {nad.name!r} in {conf_dir}" if conf_dir else ""
            raise InvalidConfig(f"{where} has an empty spec.config{looked}")
        conf = found
    if not conf.get("name"):
        conf["name"] = nad.name
    return conf


def nad_config(
    store: Store, namespace: str, name: str, conf_dir: str | Path | None
) -> dict[str, Any]:
    """Look up the NAD and resolve its config; the store's NotFound propagates."""
    return nad_config_from_object(store.get(NAD, namespace, name), conf_dir)
