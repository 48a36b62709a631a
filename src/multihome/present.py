"""Printing objects the way kubectl does: tables with AGE, `-o yaml|json|name`, describe.

Kept free of click so any command (and tests) can format without a context.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from multihome.store import LAST_APPLIED, Object, kind_info
from multihome.store.merge import normalize

# kubectl's tab writer: minimum cell width 10 including padding, 3 spaces of padding.
_MIN_WIDTH = 10
_PADDING = 3

# kind -> function giving (header, value) columns between NAME and AGE; `wide` adds more.
ColumnFn = Callable[[Object, bool], list[tuple[str, str]]]
_COLUMNS: dict[str, ColumnFn] = {}


def register_columns(kind: str, fn: ColumnFn) -> None:
    """Let a kind show more than NAME and AGE in `get` (pods show STATUS, for example)."""
    _COLUMNS[kind] = fn


def format_age(delta: timedelta) -> str:
    """kubectl's HumanDuration: 5s, 3m20s, 15m, 2h10m, 20h, 3d4h, 30d, 2y40d."""
    secs = int(delta.total_seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m{s}s" if s else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h{m}m" if m else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d{h}h" if h else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        d = (hours // 24) % 365
        return f"{hours // 24 // 365}y{d}d" if d else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age_of(obj: Object, now: datetime | None = None) -> str:
    created = obj.creation_timestamp
    if created is None:
        return "<unknown>"
    return format_age((now or datetime.now(UTC)) - created)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded like kubectl's tabwriter; the last column is not padded."""
    all_rows = [list(headers), *[list(r) for r in rows]]
    widths = [
        max(_MIN_WIDTH, max(len(r[i]) for r in all_rows) + _PADDING)
        for i in range(len(headers) - 1)
    ]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + row[-1])
    return "\n".join(lines)


def object_table(objs: Sequence[Object], *, all_namespaces: bool = False, wide: bool = False,
                 now: datetime | None = None) -> str:
    """`kubectl get` table for objects of one kind."""
    headers: list[str] = ["NAMESPACE"] if all_namespaces else []
    headers.append("NAME")
    rows: list[list[str]] = []
    extra_headers: list[str] = []
    for obj in objs:
        fn = _COLUMNS.get(obj.kind)
        extra = fn(obj, wide) if fn else []
        extra_headers = [h for h, _ in extra]
        row = [obj.namespace] if all_namespaces else []
        row += [obj.name, *[v for _, v in extra], age_of(obj, now)]
        rows.append(row)
    headers += [*extra_headers, "AGE"]
    return format_table(headers, rows)


def name_line(obj: Object) -> str:
    """`-o name`: ``networkattachmentdefinition.k8s.cni.cncf.io/bridge-dev``."""
    return kind_info(obj.kind).ref(obj.name)


def _clean(obj: Object) -> dict[str, Any]:
    # Reading `obj.annotations` leaves an empty map behind; the API never shows one.
    return normalize(copy.deepcopy(obj.body))


def _as_list(objs: Sequence[Object]) -> dict[str, Any]:
    return {"apiVersion": "v1", "items": [_clean(o) for o in objs], "kind": "List",
            "metadata": {"resourceVersion": ""}}


def to_json(objs: Sequence[Object], *, single: bool) -> str:
    data = _clean(objs[0]) if single and len(objs) == 1 else _as_list(objs)
    return json.dumps(data, indent=4, sort_keys=True)


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line strings (configs written as block scalars) stay readable.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def to_yaml(objs: Sequence[Object], *, single: bool) -> str:
    data = _clean(objs[0]) if single and len(objs) == 1 else _as_list(objs)
    text: str = yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=True,
                          allow_unicode=True, width=1 << 20)
    return text.rstrip("\n")


_ACRONYMS = {"uid": "UID", "api": "API", "ip": "IP", "ips": "IPs", "mac": "MAC", "dns": "DNS",
             "mtu": "MTU", "cni": "CNI", "id": "ID", "url": "URL", "vlan": "VLAN"}


def _title(key: str) -> str:
    """``creationTimestamp`` → ``Creation Timestamp`` as kubectl describe writes keys."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key).replace("-", " ").replace("_", " ")
    return " ".join(_ACRONYMS.get(w.lower(), w[:1].upper() + w[1:]) for w in words.split())


def _describe_value(value: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        width = max((len(_title(k)) for k in value), default=0) + 3
        for key in value:
            item = value[key]
            label = f"{_title(key)}:"
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{label}")
                _describe_value(item, indent + 2, out)
            else:
                out.append(f"{pad}{label.ljust(width)}{_scalar(item)}".rstrip())
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                _describe_value(item, indent + 2, out)
            else:
                out.append(f"{pad}{_scalar(item)}")
    else:
        out.append(f"{pad}{_scalar(value)}")


def _scalar(value: Any) -> str:
    if value is None or value in ({}, []):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _multiline_map(label: str, mapping: dict[str, str], width: int) -> list[str]:
    shown = {k: v for k, v in sorted(mapping.items()) if k != LAST_APPLIED}
    if not shown:
        return [f"{label.ljust(width)}<none>"]
    lines = []
    for i, (k, v) in enumerate(shown.items()):
        prefix = label.ljust(width) if i == 0 else " " * width
        sep = ": " if label.startswith("Annotations") else "="
        value_lines = v.split("\n")
        lines.append(f"{prefix}{k}{sep}{value_lines[0]}")
        lines += [" " * width + extra for extra in value_lines[1:]]
    return lines


def describe(obj: Object, *, extra_sections: Sequence[str] = (),
             events: Sequence[Object] = ()) -> str:
    """`kubectl describe` for any kind: identity, labels, annotations, then the body."""
    width = 14
    meta = obj.metadata
    lines = [f"{'Name:'.ljust(width)}{obj.name}"]
    if obj.namespace:
        lines.append(f"{'Namespace:'.ljust(width)}{obj.namespace}")
    lines += _multiline_map("Labels:", meta.get("labels") or {}, width)
    lines += _multiline_map("Annotations:", meta.get("annotations") or {}, width)
    lines.append(f"{'API Version:'.ljust(width)}{obj.body.get('apiVersion', '')}")
    lines.append(f"{'Kind:'.ljust(width)}{obj.kind}")
    rest_meta = {k: v for k, v in meta.items()
                 if k not in ("name", "namespace", "labels", "annotations")}
    body = {"Metadata": rest_meta}
    body.update({k: v for k, v in obj.body.items()
                 if k not in ("apiVersion", "kind", "metadata")})
    _describe_value(body, 0, lines)
    lines += list(extra_sections)
    lines += _events_section(events)
    return "\n".join(lines)


def _events_section(events: Sequence[Object]) -> list[str]:
    """kubectl's Events table, oldest first."""
    if not events:
        return ["Events:  <none>"]
    now = datetime.now(UTC)
    rows = []
    for e in sorted(events, key=lambda e: e.resource_version):
        source = e.body.get("source")
        rows.append([str(e.body.get("type", "")), str(e.body.get("reason", "")),
                     age_of(e, now), str(source.get("component", "")
                                         if isinstance(source, dict) else ""),
                     str(e.body.get("message", ""))])
    table = format_table(["Type", "Reason", "Age", "From", "Message"], rows)
    return ["Events:", *("  " + line for line in table.splitlines())]
