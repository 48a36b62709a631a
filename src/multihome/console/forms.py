"""NAD create forms: turn form fields into the manifest, and errors back into fields.

No validation of its own: the manifest goes through the CLI's admission check
(`multihome.admission.admit` → `attach.nad.validate_nad`) and the plugin's own config
parser, so a form error is worded exactly as `multihome apply` or the plugin words it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from multihome import admission
from multihome.store import NAD, Object

RESOURCE_PREFIX = "bridge.network.kubevirt.io/"
NAD_API = "k8s.cni.cncf.io/v1"

# form type -> (CNI type, module whose parse(call) checks the plugin's keys)
NETWORK_TYPES: dict[str, tuple[str, str]] = {
    "linux-bridge": ("cnv-bridge", "multihome.plugins.bridge_config"),
    "macvlan": ("macvlan", "multihome.plugins.macvlan"),
    "ipvlan": ("ipvlan", "multihome.plugins.ipvlan"),
    "host-device": ("host-device", "multihome.plugins.host_device"),
    "sriov": ("sriov", "multihome.plugins.sriov"),
}

# fields each form shows; an error about anything else goes above the form
FORM_FIELDS: dict[str, tuple[str, ...]] = {
    "linux-bridge": ("name", "namespace", "bridge", "resource", "vlan", "macspoofchk", "ipam"),
    "macvlan": ("name", "namespace", "master", "mode", "ipam"),
    "ipvlan": ("name", "namespace", "master", "mode", "ipam"),
    "host-device": ("name", "namespace", "device", "ipam"),
    "sriov": ("name", "namespace", "vlan", "ipam"),
}

# a pattern in an error message -> the form field it concerns (first match wins)
_FIELD_HINTS: list[tuple[str, str]] = [
    (r"NetworkAttachmentDefinition name", "name"), (r"namespace", "namespace"),
    (r"\bvlan\b", "vlan"), (r"\bmode\b", "mode"), (r"\bmaster\b", "master"),
    (r"\bresourceName\b", "resource"), (r"\bbridge\b", "bridge"),
    (r"\bdevice\b", "device"), (r"\bipam\b", "ipam"),
]


@dataclass
class NadForm:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default).strip()


def _int_field(form: NadForm, key: str) -> int | str | None:
    text = form.get(key)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text  # left as text so the plugin parser names the problem


def build_config(form: NadForm) -> dict[str, Any]:
    """The CNI config, keys in the seed's order for a Linux bridge."""
    kind = form.get("type", "linux-bridge")
    cni_type, _ = NETWORK_TYPES.get(kind, (kind, ""))
    conf: dict[str, Any] = {"cniVersion": form.get("cniVersion", "0.3.1"),
                            "name": form.get("name"), "type": cni_type}
    if kind == "linux-bridge":
        conf["bridge"] = form.get("bridge")
        conf["macspoofchk"] = form.get("macspoofchk") in ("on", "true", "1")
        vlan = _int_field(form, "vlan")
        conf["vlan"] = 0 if vlan is None else vlan
    elif kind in ("macvlan", "ipvlan"):
        if form.get("master"):
            conf["master"] = form.get("master")
        if form.get("mode"):
            conf["mode"] = form.get("mode")
    elif kind == "host-device":
        conf["device"] = form.get("device")
    elif kind == "sriov":
        vlan = _int_field(form, "vlan")
        if vlan is not None:
            conf["vlan"] = vlan
    ipam = form.get("ipam")
    if ipam:
        try:
            conf["ipam"] = json.loads(ipam)
        except ValueError as e:
            form.errors["ipam"] = f"IPAM is not valid JSON ({e})"
    return conf


def seed_config_text(conf: dict[str, Any]) -> str:
    return json.dumps(conf, separators=(", ", ": "))


def build_manifest(form: NadForm) -> dict[str, Any]:
    conf = build_config(form)
    meta: dict[str, Any] = {"name": form.get("name"),
                            "namespace": form.get("namespace") or "default"}
    # resourceName names the node bridge resource; it defaults to the config's bridge, but
    # the seed NAD asks for bridge-dev while bridging to dev-bridge, so it can be overridden
    resource = form.get("resource") or form.get("bridge")
    if form.get("type", "linux-bridge") == "linux-bridge" and resource:
        meta["annotations"] = {
            "k8s.v1.cni.cncf.io/resourceName": RESOURCE_PREFIX + resource}
    return {"apiVersion": NAD_API, "kind": NAD, "metadata": meta,
            "spec": {"config": seed_config_text(conf)}}


def field_for(message: str, form_type: str = "linux-bridge") -> str:
    """The field of ``form_type``'s form an error message concerns ("general" if none)."""
    # the admission prefix names the object (which may contain "bridge"); look past it
    message = message.split(" is invalid: ", 1)[-1]
    shown = FORM_FIELDS.get(form_type, ())
    for pattern, name in _FIELD_HINTS:
        if re.search(pattern, message, re.IGNORECASE):
            return name if name in shown else "general"
    return "general"


def admit(body: dict[str, Any], namespace: str) -> tuple[Object | None, str | None]:
    """The object and the CLI's admission message for it (None when admitted)."""
    try:
        info, obj = admission.manifest_object(admission.Manifest("console", body),
                                               namespace or None)
    except admission.ManifestError as e:
        return None, str(e)
    return obj, admission.admit(info, obj)
