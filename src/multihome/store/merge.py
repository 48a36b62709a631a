"""What `apply` writes: the manifest, merged with what the server and other writers own.

Like `kubectl apply`, the manifest replaces the user's part of the object (spec and
metadata), while server-managed metadata and status stay, and annotations or labels set
by other writers (the engine's network-status, for example) survive unless the previous
apply set them and the new manifest dropped them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from multihome.store.base import LAST_APPLIED

# Metadata the store sets; a manifest never overrides these.
SERVER_METADATA = ("uid", "creationTimestamp", "resourceVersion", "generation")


def last_applied_text(manifest: dict[str, Any]) -> str:
    """The manifest as `kubectl apply` records it (without its own record)."""
    body = copy.deepcopy(manifest)
    meta = body.get("metadata", {})
    for key in SERVER_METADATA:
        meta.pop(key, None)
    ann = meta.get("annotations")
    if isinstance(ann, dict):
        ann.pop(LAST_APPLIED, None)
        if not ann:
            meta.pop("annotations")
    body.pop("status", None)
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _merge_map(
    current: dict[str, str], previous_applied: dict[str, str], wanted: dict[str, str]
) -> dict[str, str]:
    merged = {k: v for k, v in current.items() if k not in previous_applied or k in wanted}
    merged.update(wanted)
    return merged


def merge_apply(existing: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """The body to store when ``manifest`` is applied over ``existing``."""
    new = copy.deepcopy(manifest)
    new.pop("status", None)
    old_meta: dict[str, Any] = existing.get("metadata", {})
    meta: dict[str, Any] = new.setdefault("metadata", {})
    for key in SERVER_METADATA:
        meta.pop(key, None)
        if key in old_meta:
            meta[key] = old_meta[key]

    previous: dict[str, Any] = {}
    try:
        parsed = json.loads(old_meta.get("annotations", {}).get(LAST_APPLIED, "{}"))
        previous = parsed.get("metadata", {}) if isinstance(parsed, dict) else {}
    except ValueError:
        previous = {}
    for key in ("annotations", "labels"):
        merged = _merge_map(
            old_meta.get(key) or {}, previous.get(key) or {}, meta.get(key) or {}
        )
        if key == "annotations":
            merged[LAST_APPLIED] = last_applied_text(manifest)
        if merged:
            meta[key] = merged
        else:
            meta.pop(key, None)

    if "status" in existing:
        new["status"] = copy.deepcopy(existing["status"])
    return new


def normalize(body: dict[str, Any]) -> dict[str, Any]:
    """Drop empty annotations/labels maps so stored and printed objects look like the API's."""
    meta = body.get("metadata")
    if isinstance(meta, dict):
        for key in ("annotations", "labels"):
            if key in meta and not meta[key]:
                del meta[key]
    return body
