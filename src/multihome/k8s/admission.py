"""Admission decisions: validate NetworkAttachmentDefinitions, inject pod resources.

Both reuse the engine's own checks (:func:`multihome.attach.nad.validate_nad`,
:func:`multihome.attach.selection.parse_networks_annotation`), so `multihome apply`, the
webhook and an ADD refuse the same things with the same words.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from multihome.attach.nad import RESOURCE_NAME_ANNOTATION, InvalidNAD, resource_name, validate_nad
from multihome.attach.selection import NETWORKS_ANNOTATION, parse_networks_annotation
from multihome.cni.errors import CNIError
from multihome.cni.version import require_supported
from multihome.plugins.registry import BUILTIN
from multihome.store import NAD, NotFound, Object, Store, StoreError

# A device-plugin resource name: `<vendor domain>/<name>`, as the kubelet accepts it.
RESOURCE_NAME_RE = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass
class Policy:
    """What the validating webhook accepts besides the plugins built into the image."""

    allowed_types: set[str] = field(default_factory=set)
    allow_any_type: bool = False


class Denied(Exception):
    """The request is refused; the message is what `kubectl` prints."""


def _plugin_types(text: str) -> list[str]:
    conf = json.loads(text)
    plugins = conf.get("plugins") if "plugins" in conf else [conf]
    return [str(p.get("type", "")) for p in plugins if isinstance(p, dict)]


def _check_version(text: str, where: str) -> None:
    """Syntax is checked by validate_nad; here: a version this node's plugins speak."""
    version = json.loads(text).get("cniVersion")
    if version:
        try:
            require_supported(str(version))
        except CNIError as e:
            raise Denied(f"{where}: {e}") from None


def validate_nad_object(body: dict[str, Any], namespace: str, policy: Policy) -> None:
    try:
        obj = Object.from_manifest(body, namespace)
        validate_nad(obj)
    except (CNIError, StoreError, ValueError) as e:
        raise Denied(str(e)) from None
    where = f"NetworkAttachmentDefinition {obj.namespace}/{obj.name}"
    resource = resource_name(obj)
    if resource is not None and not RESOURCE_NAME_RE.match(resource):
        raise Denied(f"{where}: annotation {RESOURCE_NAME_ANNOTATION} \"{resource}\" is not "
                     "a resource name like \"intel.com/sriov_netdevice\" (<domain>/<name>)")
    text = obj.spec.get("config") or ""
    if not text.strip():
        return
    _check_version(text, where)
    if policy.allow_any_type:
        return
    known = set(BUILTIN) | policy.allowed_types
    for ptype in _plugin_types(text):
        if ptype not in known:
            raise Denied(f"{where}: plugin type \"{ptype}\" is not in this node image and not "
                         "allowed by the webhook's --allow-type; use one of "
                         f"{', '.join(sorted(known))}")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def inject_resources(pod: dict[str, Any], namespace: str, store: Store,
                     warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """The JSONPatch adding each selected NAD's resource to the first container.

    A NAD that does not exist yet is no reason to refuse the pod: as with Multus, the pod
    waits in ContainerCreating (with a NoNetworkFound event) until the NAD is created. The
    person creating it is told at once, through an admission warning kubectl prints.
    """
    meta = pod.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or "<new pod>"
    text = (meta.get("annotations") or {}).get(NETWORKS_ANNOTATION, "")
    if not text.strip():
        return []
    try:
        selections = parse_networks_annotation(text, namespace, name)
    except CNIError as e:
        raise Denied(str(e)) from None
    counts: dict[str, int] = {}
    for sel in selections:
        try:
            nad = store.get(NAD, sel.namespace, sel.name)
        except NotFound:
            if warnings is not None:
                warnings.append(
                    f"{NETWORKS_ANNOTATION} selects NetworkAttachmentDefinition "
                    f"{sel.namespace}/{sel.name}, which does not exist: the pod waits in "
                    "ContainerCreating until it is created")
            continue
        resource = resource_name(nad)
        if resource:
            counts[resource] = counts.get(resource, 0) + 1
    containers = (pod.get("spec") or {}).get("containers") or []
    if not counts or not containers:
        return []
    resources = containers[0].get("resources") or {}
    patch: list[dict[str, Any]] = []
    base = "/spec/containers/0/resources"
    if "resources" not in containers[0]:
        patch.append({"op": "add", "path": base, "value": {}})
    for section in ("requests", "limits"):
        if section not in resources:
            patch.append({"op": "add", "path": f"{base}/{section}", "value": {}})
        for resource, count in sorted(counts.items()):
            patch.append({"op": "add", "path": f"{base}/{section}/{_escape(resource)}",
                          "value": str(count)})
    return patch


def review(body: dict[str, Any], kind: str, policy: Policy,
           store: Store | None) -> dict[str, Any]:
    """The AdmissionReview v1 answer to one request; ``kind`` is "nad" or "pod"."""
    request = body.get("request") or {}
    response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
    try:
        obj = request.get("object") or {}
        namespace = str(request.get("namespace") or "")
        if request.get("operation") == "DELETE":
            pass
        elif kind == "nad":
            validate_nad_object(obj, namespace, policy)
        elif store is not None:
            warnings: list[str] = []
            patch = inject_resources(obj, namespace, store, warnings)
            if warnings:
                response["warnings"] = warnings
            if patch:
                response["patchType"] = "JSONPatch"
                response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    except Denied as e:
        response["allowed"] = False
        response["status"] = {"code": 400, "reason": "BadRequest", "message": str(e)}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": response}


__all__ = ["Denied", "InvalidNAD", "Policy", "review"]
