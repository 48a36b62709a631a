"""Kubernetes label selectors (`matchLabels`, `matchExpressions`): parsed once, matched often.

The rules are metav1.LabelSelector's: every `matchLabels` pair and every expression must
hold (AND); `In`/`NotIn` need a non-empty `values`, `Exists`/`DoesNotExist` none; an empty
selector (`{}`) selects everything. Keys and values are checked as the API server checks
them, so a selector the cluster would refuse is refused here with one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multihome.store.names import SUBDOMAIN_MAX, SUBDOMAIN_RE

_NAME_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?\Z")
NAME_MAX = 63
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# Bounds: a hostile selector must not make every match slow or every error long.
MAX_TERMS = 256
MAX_VALUES = 256


class InvalidSelector(ValueError):
    """A selector the API server would refuse; the message says where and why."""


def label_key_problem(key: object) -> str | None:
    """Why `key` is not a label key (`[prefix/]name`), or None."""
    if not isinstance(key, str):
        return f"label key must be a string, got {type(key).__name__}"
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > SUBDOMAIN_MAX or not SUBDOMAIN_RE.match(prefix)):
        return f"label key {json.dumps(key[:80])} has an invalid prefix (a DNS-1123 subdomain)"
    if not name or len(name) > NAME_MAX or not _NAME_RE.match(name):
        return (f"label key {json.dumps(key[:80])} is invalid: a name of at most 63 letters, "
                "digits, '-', '_' or '.', starting and ending with a letter or digit")
    return None


def label_value_problem(value: object) -> str | None:
    """Why `value` is not a label value (empty, or like a key's name part), or None."""
    if not isinstance(value, str):
        return f"label value must be a string, got {type(value).__name__}"
    if len(value) > NAME_MAX or not _NAME_RE.match(value):
        return (f"label value {json.dumps(value[:80])} is invalid: at most 63 letters, "
                "digits, '-', '_' or '.', starting and ending with a letter or digit")
    return None


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # one of OPERATORS
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels

    def __str__(self) -> str:
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        if self.operator == "In" and len(self.values) == 1:
            return f"{self.key}={next(iter(self.values))}"
        word = "in" if self.operator == "In" else "notin"
        return f"{self.key} {word} ({','.join(sorted(self.values))})"


@dataclass(frozen=True)
class LabelSelector:
    """A parsed selector; ``requirements`` empty selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def selects_all(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        """kubectl's rendering: `app=db,tier in (a,b)`; `<none>` for everything."""
        return ",".join(str(r) for r in self.requirements) or "<none>"


def parse_selector(value: Any, where: str) -> LabelSelector:
    """A metav1.LabelSelector from its manifest form; InvalidSelector names `where`."""
    if value is None:
        return LabelSelector()
    if not isinstance(value, dict):
        raise InvalidSelector(f"{where}: must be a mapping with matchLabels/matchExpressions")
    unknown = sorted(set(value) - {"matchLabels", "matchExpressions"})
    if unknown:
        raise InvalidSelector(f"{where}: unknown field {json.dumps(str(unknown[0])[:80])}")
    reqs: list[Requirement] = []
    match_labels = value.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        raise InvalidSelector(f"{where}.matchLabels: must map label keys to values")
    exprs = value.get("matchExpressions") or []
    if not isinstance(exprs, list):
        raise InvalidSelector(f"{where}.matchExpressions: must be a list")
    if len(match_labels) + len(exprs) > MAX_TERMS:
        raise InvalidSelector(f"{where}: more than {MAX_TERMS} terms")
    for key, val in match_labels.items():
        problem = label_key_problem(key) or label_value_problem(val)
        if problem:
            raise InvalidSelector(f"{where}.matchLabels: {problem}")
        reqs.append(Requirement(key, "In", frozenset({val})))
    for i, expr in enumerate(exprs):
        reqs.append(_requirement(expr, f"{where}.matchExpressions[{i}]"))
    return LabelSelector(tuple(reqs))


def _requirement(expr: Any, where: str) -> Requirement:
    if not isinstance(expr, dict):
        raise InvalidSelector(f"{where}: must be a mapping with key, operator and values")
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values")
    problem = label_key_problem(key)
    if problem:
        raise InvalidSelector(f"{where}.key: {problem}")
    if op not in OPERATORS:
        raise InvalidSelector(f"{where}.operator: {json.dumps(str(op)[:40])} is not one of "
                              f"{', '.join(OPERATORS)}")
    if values is None:
        values = []
    if not isinstance(values, list):
        raise InvalidSelector(f"{where}.values: must be a list of strings")
    if len(values) > MAX_VALUES:
        raise InvalidSelector(f"{where}.values: more than {MAX_VALUES} values")
    if op in ("In", "NotIn") and not values:
        raise InvalidSelector(f"{where}.values: must be non-empty when operator is {op}")
    if op in ("Exists", "DoesNotExist") and values:
        raise InvalidSelector(f"{where}.values: may not be specified when operator is {op}")
    for v in values:
        problem = label_value_problem(v)
        if problem:
            raise InvalidSelector(f"{where}.values: {problem}")
    assert isinstance(key, str)
    return Requirement(key, str(op), frozenset(values))


def parse_label_arg(text: str) -> dict[str, str]:
    """`app=db,tier=x` (kubectl run --labels, kubectl label) as a mapping; ValueError says why."""
    out: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"invalid label {json.dumps(item[:80])}: expected KEY=VALUE")
        problem = label_key_problem(key) or label_value_problem(value)
        if problem:
            raise ValueError(problem)
        out[key] = value
    return out
