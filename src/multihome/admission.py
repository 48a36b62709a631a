"""What the CLI and the console check before an object reaches the store.

A manifest becomes an object in the namespace kubectl would pick (:func:`manifest_object`),
then the kind's validator admits or refuses it (:func:`admit`), with kubectl's wording.
The CLI (`apply`, `create`, `delete -f`) and the console's forms both call these, so a
web form is refused exactly where `multihome apply` would be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from multihome.errors import MultihomeError
from multihome.store import (
    MULTI_POLICY,
    NAD,
    NNCP,
    InvalidObject,
    InvalidObjectName,
    KindInfo,
    Object,
    check_ref,
)
from multihome.store.objects import known_kinds

DEFAULT_NAMESPACE = "default"

Validator = Callable[[Object], None]



# The validators import their kind's module when first called, not here: `multihome get`
# loads this module, and node.policy brings pyroute2 (~0.2 s of start-up). The imports
# still run down the layers, where the import-linter contract sees them.
def _validate_nad(obj: Object) -> None:
    from multihome.attach.nad import validate_nad

    validate_nad(obj)


def _validate_nncp(obj: Object) -> None:
    from multihome.node.policy import validate_policy

    validate_policy(obj)


def _validate_multi_policy(obj: Object) -> None:
    from multihome.attach.policy.model import validate_policy

    validate_policy(obj)


# kind -> admission check run before create/apply (raises CNIError or ValueError).
VALIDATORS: dict[str, Validator] = {NAD: _validate_nad, NNCP: _validate_nncp,
                                    MULTI_POLICY: _validate_multi_policy}


def register_validator(kind: str, fn: Validator) -> None:
    VALIDATORS[kind] = fn


@dataclass
class Manifest:
    source: str  # file name as kubectl prints it ("STDIN" for -)
    body: dict[str, Any]


class ManifestError(Exception):
    """A manifest that names no known kind or no valid object; the message is kubectl's."""


def _kind_for_manifest(m: Manifest) -> KindInfo:
    kind = m.body.get("kind")
    api_version = m.body.get("apiVersion")
    name = (m.body.get("metadata") or {}).get("name", "") if isinstance(
        m.body.get("metadata"), dict) else ""
    for info in known_kinds():
        if info.kind == kind and info.api_version == api_version:
            return info
    raise ManifestError(
        f'error: resource mapping not found for name: "{name}" from "{m.source}": '
        f'no matches for kind "{kind}" in version "{api_version}"'
    )


def manifest_object(m: Manifest, namespace_flag: str | None) -> tuple[KindInfo, Object]:
    """The object a manifest describes, in the namespace kubectl would pick."""
    info = _kind_for_manifest(m)
    meta = m.body.get("metadata")
    own_ns = meta.get("namespace") if isinstance(meta, dict) else None
    if not info.namespaced:
        namespace = ""
    else:
        if own_ns and namespace_flag and own_ns != namespace_flag:
            raise ManifestError(
                f'error: the namespace from the provided object "{own_ns}" does not match the '
                f'namespace "{namespace_flag}". You must pass \'--namespace={own_ns}\' to '
                "perform this operation."
            )
        namespace = own_ns or namespace_flag or DEFAULT_NAMESPACE
    try:
        obj = Object.from_manifest(m.body, namespace)
    except InvalidObject as e:
        raise ManifestError(f'error: error validating "{m.source}": {e}') from None
    try:
        check_ref(namespace if info.namespaced else None, obj.name, info.kind)
    except InvalidObjectName as e:
        raise ManifestError(f'The {info.kind} "{obj.name}" is invalid: {e}') from None
    if not info.namespaced:
        obj = Object(obj.kind, obj.name, "", obj.body)
    obj.namespace = namespace
    return info, obj


def admit(info: KindInfo, obj: Object) -> str | None:
    """Why the kind's validator refuses `obj` (kubectl's wording); None when admitted."""
    check = VALIDATORS.get(obj.kind)
    if check is None:
        return None
    try:
        check(obj)
    except (MultihomeError, ValueError) as e:
        return f'The {info.kind} "{obj.name}" is invalid: {e}'
    return None
