"""The one YAML reader for manifests a person hands us (`apply -f`, `pod run --networks-file`,
`node apply -f`, the console).

PyYAML's safe loader is safe from code execution but not from size: aliases are shared
when loaded, and expanded only later (by `json.dumps` when the object is stored, or by
any walk over it), so a "billion laughs" document of a few hundred bytes becomes
billions of nodes there; an alias may even refer to itself (a cycle, which no store can
hold); and nesting beyond the interpreter's recursion limit raises RecursionError. Here
each of those, and bytes that are not UTF-8, is a YamlError with a one-line message.
"""

from __future__ import annotations

from typing import Any

import yaml

# Kubernetes objects nest a dozen levels; 100 is far beyond any real manifest.
MAX_DEPTH = 100
# What a document may grow to when its aliases are expanded. Plenty for anchors used to
# share a block of config among several objects; a bomb needs millions.
MAX_EXPANDED_NODES = 10_000
# The bound on one manifest file or stdin.
MAX_BYTES = 8 * 1024 * 1024


class YamlError(ValueError):
    """A document that cannot be read; the message is one line for a person."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting, cyclic aliases and alias expansion bombs."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases_seen = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlError(f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        if self._aliases_seen:
            _check_expansion(node)
        return node

    def get_event(self) -> Any:
        event = super().get_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self._aliases_seen += 1
        return event


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    # A manifest becomes JSON (the store, the API server): kubectl keeps `2020-01-01`
    # as the string it is, where PyYAML would make a datetime no JSON encoder takes.
    return str(loader.construct_scalar(node))


_BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: Any) -> None:
    """Count the nodes `root` has once every alias is expanded (shared nodes counted
    each time they are used), without expanding anything; refuse cycles and bombs."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            if size[key] > MAX_EXPANDED_NODES:
                raise YamlError(f"its aliases expand to more than {MAX_EXPANDED_NODES} "
                                "nodes; write the repeated parts out or use fewer aliases")
            continue
        if key in size:
            continue
        if key in on_path:
            raise YamlError("an alias refers to a node that contains it (a cycle)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)


def _one_line(e: yaml.YAMLError) -> str:
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = e.problem or e.context or "invalid YAML"
        return f"{where}{what}"
    return " ".join(str(e).split())


def load_all(data: str | bytes) -> list[Any]:
    """Every document of `data`, as PyYAML's safe loader reads them; YamlError otherwise."""
    if len(data) > MAX_BYTES:
        raise YamlError(f"{len(data)} bytes, more than the {MAX_BYTES} accepted")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise YamlError(f"not UTF-8 text (invalid byte at offset {e.start})") from None
    try:
        loader = _BoundedLoader(data)  # its reader refuses control characters right here
        try:
            docs = []
            while loader.check_data():  # type: ignore[no-untyped-call]
                docs.append(loader.get_data())
            return docs
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise YamlError(_one_line(e)) from None
    except RecursionError:
        raise YamlError(f"nested deeper than {MAX_DEPTH} levels") from None


def load_one(data: str | bytes) -> Any:
    """The single document of `data` (None when empty); YamlError when there are several."""
    docs = load_all(data)
    if len(docs) > 1:
        raise YamlError(f"expected one document, found {len(docs)}")
    return docs[0] if docs else None
