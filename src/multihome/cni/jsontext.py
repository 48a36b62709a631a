"""The one JSON decoder for text that arrives from outside (a config on stdin, a daemon
request, a result or cache file).

`json.loads` alone is not safe on hostile input: nesting deeper than the interpreter's
recursion limit raises RecursionError (not ValueError), invalid UTF-8 raises
UnicodeDecodeError, and it accepts `NaN`/`Infinity`, which are not JSON and which Go's
decoder (what every other CNI plugin uses) refuses. Here every such input becomes a
DecodingFailure (CNI code 6) that says what is wrong and where.
"""

from __future__ import annotations

import json
from typing import Any

from multihome.cni.errors import DecodingFailure

# A real CNI config or result is a few levels deep (prevResult.ips[].address is 4);
# 64 leaves room for any plugin's own keys and keeps every later walk over the value
# (copies, json.dumps, comparisons) far from the recursion limit.
MAX_DEPTH = 64
# A config list with a prevResult for every plugin is a few kilobytes; this bounds what
# one call makes us hold in memory.
MAX_BYTES = 8 * 1024 * 1024


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests containers deeper than `limit` (iterative: no recursion)."""
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
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return False


def loads(data: bytes | str, what: str = "network config") -> Any:
    """Decode one JSON document from outside; DecodingFailure for anything else."""
    if len(data) > MAX_BYTES:
        raise DecodingFailure(f"{what} is {len(data)} bytes, more than the "
                              f"{MAX_BYTES} bytes accepted")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodingFailure(f"{what} is not valid UTF-8",
                                  f"invalid byte at offset {e.start}") from e
    else:
        text = data
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError as e:
        raise DecodingFailure(f"{what} is nested deeper than {MAX_DEPTH} levels") from e
    except ValueError as e:  # JSONDecodeError, and ints of more digits than Python allows
        raise DecodingFailure(f"{what} is not valid JSON", str(e)) from e
    # Only text holding many brackets can be too deep: skip the walk for the common case.
    if (text.count("[") + text.count("{") > MAX_DEPTH
            and too_deep(value)):
        raise DecodingFailure(f"{what} is nested deeper than {MAX_DEPTH} levels")
    return value
