"""The names objects and namespaces may have: Kubernetes' DNS-1123 rules, in one place.

Every way a name comes in (a manifest, a CLI argument, `pod run`, the console, the
Kubernetes store before it builds an API path) checks it here. Besides matching what the
API server accepts, the rules keep names safe to use as path segments: no `/`, no `..`,
nothing that a URL or a file path would read differently.
"""

from __future__ import annotations

import json
import re

LABEL_MAX = 63
SUBDOMAIN_MAX = 253
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
LABEL_RE = re.compile(rf"{_LABEL}\Z")
SUBDOMAIN_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*\Z")


class InvalidName(ValueError):
    """A name or namespace that breaks the rules; the message says which rule."""


def label_problem(value: object, what: str) -> str | None:
    """Why `value` is not a DNS-1123 label (a namespace, a NAD name), or None."""
    if not isinstance(value, str):
        return f"{what} must be a string, got {type(value).__name__}"
    if len(value) > LABEL_MAX:
        return f"{what} {json.dumps(value[:80])}... is longer than {LABEL_MAX} characters"
    if not LABEL_RE.match(value):
        return (f"{what} {json.dumps(value)} is not a DNS-1123 label: use lower case "
                "letters, digits and '-', starting and ending with a letter or digit")
    return None


def subdomain_problem(value: object, what: str) -> str | None:
    """Why `value` is not a DNS-1123 subdomain (most object names), or None."""
    if not isinstance(value, str):
        return f"{what} must be a string, got {type(value).__name__}"
    if len(value) > SUBDOMAIN_MAX:
        return f"{what} {json.dumps(value[:80])}... is longer than {SUBDOMAIN_MAX} characters"
    if not SUBDOMAIN_RE.match(value):
        return (f"{what} {json.dumps(value)} is not a DNS-1123 subdomain: use lower case letters, "
                "digits, '-' and '.', starting and ending with a letter or digit")
    return None


def check_namespace(value: str) -> str:
    problem = label_problem(value, "namespace")
    if problem:
        raise InvalidName(problem)
    return value


def check_name(value: str, what: str = "name") -> str:
    problem = subdomain_problem(value, what)
    if problem:
        raise InvalidName(problem)
    return value


def check_label(value: str, what: str = "name") -> str:
    """For names that must be labels (a lab pod's name becomes an interface-sized id)."""
    problem = label_problem(value, what)
    if problem:
        raise InvalidName(problem)
    return value
