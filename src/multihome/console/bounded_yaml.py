"""YAML from a web form, with its aliases bounded.

`yaml.safe_load` expands aliases: a 1 kB "billion laughs" document (each anchor a list of
ten aliases of the one before) becomes gigabytes of objects, and the store then holds the
expansion (it grew by 116 MB through the YAML editor). The document is composed into
nodes first (aliases share one node there, so that is small), its expanded size counted
(each distinct node once, memoised), and only a document within the limits is built.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_ALIASES = 100  # a hand-written manifest uses a handful, if any
MAX_NODES = 50_000  # scalars, lists and maps after expansion (a large manifest has ~1000)


class YAMLTooLarge(yaml.YAMLError):
    """The document expands beyond the limits."""


class _BoundedLoader(yaml.SafeLoader):
    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise YAMLTooLarge(f"the document uses more than {MAX_ALIASES} aliases")
        return super().compose_node(parent, index)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], active: set[int]) -> int:
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:  # a recursive alias: its object would be infinite when dumped
        raise YAMLTooLarge("the document refers to itself through an alias")
    active.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, sizes, active)
            if total > MAX_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, sizes, active) + _expanded_size(v, sizes, active)
            if total > MAX_NODES:
                break
    active.discard(key)
    if total > MAX_NODES:
        raise YAMLTooLarge(f"the document expands to more than {MAX_NODES} values "
                           "(an alias bomb?)")
    sizes[key] = total
    return total


def load_all(text: str) -> list[Any]:
    """The documents of `text` (None for empty ones); raises yaml.YAMLError (YAMLTooLarge
    when the aliases expand it beyond the limits)."""
    loader = _BoundedLoader(text)
    try:
        nodes: list[yaml.Node] = []
        sizes: dict[int, int] = {}
        budget = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            budget += _expanded_size(node, sizes, set())
            if budget > MAX_NODES:
                raise YAMLTooLarge(f"the documents expand to more than {MAX_NODES} values")
            nodes.append(node)
        return [loader.construct_document(n) for n in nodes]
    finally:
        loader.dispose()


def load_one(text: str) -> Any:
    """The single document of `text` (None when empty); more than one is an error."""
    docs = load_all(text)
    if len(docs) > 1:
        raise yaml.YAMLError("expected a single document, found several")
    return docs[0] if docs else None
