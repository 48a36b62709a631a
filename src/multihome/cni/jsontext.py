"""JSON from untrusted callers (configs, requests, caches): parsed to a bounded depth.

`json.loads` raises RecursionError (not ValueError) on deeply nested input, and a
document that parses can still exhaust the stack later in `copy.deepcopy` or
`json.dumps`. CNI configs are a handful of levels deep; anything past MAX_DEPTH is
refused here, as a DecodingFailure, before any other code walks it.
"""

from __future__ import annotations

import json
from typing import Any

from multihome.cni.errors import DecodingFailure

MAX_DEPTH = 64


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Does `value` nest lists/objects more than `limit` levels? (iterative: no recursion)"""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads(data: bytes | str, what: str = "network config") -> Any:
    """The JSON value in `data`; DecodingFailure (code 6) for anything that is not one
    or nests deeper than MAX_DEPTH."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise DecodingFailure(f"{what} nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:  # UnicodeDecodeError is one
        raise DecodingFailure(f"{what} is not valid JSON", str(e)) from None
    if too_deep(value):
        raise DecodingFailure(f"{what} nests deeper than {MAX_DEPTH} levels")
    return value
