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
from multihome.attach.policy.model import parse_policy
from multihome.attach.selection import NETWORKS_ANNOTATION, parse_networks_annotation
from multihome.cni.version import require_supported
from multihome.errors import MultihomeError
from multihome.node.policy import validate_policy
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


def _plugin_types(conf: dict[str, Any]) -> list[str]:
    plugins = conf.get("plugins") if "plugins" in conf else [conf]
    return [str(p.get("type", "")) for p in plugins or [] if isinstance(p, dict)] \
        if isinstance(plugins, list) else []


def _check_version(conf: dict[str, Any], where: str) -> None:
    """Syntax is checked by validate_nad; here: a version this node's plugins speak."""
    version = conf.get("cniVersion")
    if version:
        try:
            require_supported(str(version))
        except MultihomeError as e:
            raise Denied(f"{where}: {e}") from None


def validate_nad_object(body: dict[str, Any], namespace: str, policy: Policy) -> None:
    try:
        obj = Object.from_manifest(body, namespace)
        validate_nad(obj)
    except (MultihomeError, StoreError, ValueError) as e:
        raise Denied(str(e)) from None
    where = f"NetworkAttachmentDefinition {obj.namespace}/{obj.name}"
    resource = resource_name(obj)
    if resource is not None and not RESOURCE_NAME_RE.match(resource):
        raise Denied(f"{where}: annotation {RESOURCE_NAME_ANNOTATION} \"{resource}\" is not "
                     "a resource name like \"intel.com/sriov_netdevice\" (<domain>/<name>)")
    text = obj.spec.get("config") or ""
    conf = json.loads(text) if isinstance(text, str) and text.strip() else None
    if not isinstance(conf, dict):
        return  # validate_nad refused anything else that is not empty
    _check_version(conf, where)
    if policy.allow_any_type:
        return
    known = set(BUILTIN) | policy.allowed_types
    for ptype in _plugin_types(conf):
        if ptype not in known:
            raise Denied(f"{where}: plugin type \"{ptype}\" is not in this node image and not "
                         "allowed by the webhook's --allow-type; use one of "
                         f"{', '.join(sorted(known))}")


def validate_nncp_object(body: dict[str, Any]) -> None:
    """A NodeNetworkConfigurationPolicy the node controller can enact (the checks of
    `multihome apply` and of the controller itself)."""
    try:
        obj = Object.from_manifest(body, "")
        validate_policy(obj)
    except (StoreError, ValueError) as e:
        raise Denied(f"NodeNetworkConfigurationPolicy "
                     f"{(body.get('metadata') or {}).get('name', '')}: {e}") from None


def validate_multi_policy_object(body: dict[str, Any], namespace: str) -> None:
    """A MultiNetworkPolicy the nodes can enforce (the checks of `multihome apply`)."""
    try:
        obj = Object.from_manifest(body, namespace)
        parse_policy(obj)
    except (StoreError, ValueError) as e:
        raise Denied(f"MultiNetworkPolicy {(body.get('metadata') or {}).get('name', '')}: "
                     f"{e}") from None


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def inject_resources(pod: dict[str, Any], namespace: str, store: Store,
                     warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """The JSONPatch adding each selected NAD's resource to the first container.

    A NAD that does not exist yet is no reason to refuse the pod: as with Multus, the pod
    waits in ContainerCreating (with a NoNetworkFound event) until the NAD is created. The
    person creating it is told at once, through an admission warning kubectl prints.
    """
    meta = _mapping(pod.get("metadata"), "pod metadata")
    name = meta.get("name") or meta.get("generateName") or "<new pod>"
    text = _mapping(meta.get("annotations"), "pod metadata.annotations").get(
        NETWORKS_ANNOTATION, "")
    if not isinstance(text, str):
        raise Denied(f"pod {namespace}/{name}: annotation {NETWORKS_ANNOTATION} must be a "
                     "string")
    if not text.strip():
        return []
    try:
        selections = parse_networks_annotation(text, namespace, name)
    except MultihomeError as e:
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
    containers = _mapping(pod.get("spec"), "pod spec").get("containers") or []
    if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
        raise Denied(f"pod {namespace}/{name}: spec.containers must be a list of objects")
    if not counts or not containers:
        return []
    resources = _mapping(containers[0].get("resources"), "spec.containers[0].resources")
    for section in ("requests", "limits"):
        _mapping(resources.get(section), f"spec.containers[0].resources.{section}")
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


def _mapping(value: Any, what: str) -> dict[str, Any]:
    """`value` when it is an object (None: empty); Denied otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Denied(f"{what} must be an object, not {type(value).__name__}")
    return value


class MalformedReview(ValueError):
    """The body is not an AdmissionReview this webhook can answer (HTTP 400)."""


def review_request(body: Any) -> dict[str, Any]:
    """The `request` of an AdmissionReview v1 body; MalformedReview when it has none."""
    if not isinstance(body, dict) or body.get("kind") != "AdmissionReview":
        raise MalformedReview("body is not an AdmissionReview")
    request = body.get("request")
    if not isinstance(request, dict):
        raise MalformedReview("AdmissionReview.request must be an object")
    if not isinstance(request.get("uid"), str) or not request["uid"]:
        raise MalformedReview("AdmissionReview.request.uid must be a non-empty string")
    return request


def review(body: Any, kind: str, policy: Policy, store: Store | None) -> dict[str, Any]:
    """The AdmissionReview v1 answer to one request; ``kind`` is "nad", "nncp",
    "multi-policy" or "pod".
    Raises MalformedReview when there is no request to answer (no uid)."""
    request = review_request(body)
    response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    try:
        obj = _mapping(request.get("object"), "request.object")
        namespace = request.get("namespace") or ""
        if not isinstance(namespace, str):
            raise Denied("request.namespace must be a string")
        if request.get("operation") == "DELETE":
            pass
        elif kind == "nad":
            validate_nad_object(obj, namespace, policy)
        elif kind == "nncp":
            validate_nncp_object(obj)
        elif kind == "multi-policy":
            validate_multi_policy_object(obj, namespace)
        elif store is not None:
            warnings: list[str] = []
            patch = inject_resources(obj, namespace, store, warnings)
            if warnings:
                response["warnings"] = warnings
            if patch:
                response["patchType"] = "JSONPatch"
                response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    except Denied as e:
        _deny(response, str(e))
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError) as e:
        # a shape the checks above did not foresee: refuse it with what went wrong rather
        # than dropping the API server's connection
        _deny(response, f"malformed {kind} object: {type(e).__name__}: {e}")
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": response}


def _deny(response: dict[str, Any], message: str) -> None:
    response["allowed"] = False
    response["status"] = {"code": 400, "reason": "BadRequest", "message": message}


__all__ = ["Denied", "InvalidNAD", "MalformedReview", "Policy", "review"]
