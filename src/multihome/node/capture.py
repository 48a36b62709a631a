"""nmpolicy for NNCPs: `spec.capture` expressions over the node's current state, and the
`"{{ capture.NAME.path }}"` references in `spec.desiredState` they resolve.

The language is kubernetes-nmstate's (nmpolicy):

- a path walks the state: ``routes.running.0.next-hop-interface`` (map keys, list indexes);
- ``PATH == VALUE`` keeps the parts of the state the path leads to whose last field equals
  VALUE: list items that do not match are dropped, maps keep only the key on the path, so
  ``routes.running.destination == "0.0.0.0/0"`` gives ``{routes: {running: [<default
  routes>]}}``. A value of another type than the field is an error, not a mismatch;
- ``PATH := VALUE`` sets that field everywhere the path leads to and keeps the rest;
- ``capture.NAME | EXPR`` runs EXPR over another capture's state instead of the node's;
- ``capture.A.PATH + capture.B.PATH`` concatenates two lists (or merges two maps) found at
  the same path;
- VALUE is a "string", a number, true/false, or a capture path such as
  ``capture.gw.routes.running.0.next-hop-interface``.

A desiredState string that is exactly ``{{ capture.NAME.PATH }}`` is replaced by the value
the path leads to (of any type: a name, a list of routes, a whole interface).

Captures are resolved once per policy generation: the enactment keeps them
(`status.capturedStates`) and later passes reuse them, so a bridge that took over the
default route does not make "the interface with the default route" the bridge itself.

Everything here is bounded (expression length, token and step counts, number of captures,
nesting of the desired state) and every failure is a CaptureError with one line naming
the capture; nothing a policy writes can make it loop, recurse without end or crash.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multihome.node.errors import NodeError

MAX_EXPRESSION_CHARS = 1024
MAX_TOKENS = 256
MAX_STEPS = 32
MAX_CAPTURES = 64
MAX_INDEX = 1_000_000
MAX_DEPTH = 64  # nesting of the desired state walked for references
CAPTURE = "capture"
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# a whole-value reference, as nmpolicy's expander matches it
REFERENCE_RE = re.compile(r"^\{\{\s*(.*?)\s*\}\}$", re.DOTALL)


class CaptureError(NodeError):
    """A capture expression or reference that cannot be parsed or resolved."""

    capture: str | None = None  # the capture whose evaluation failed, once named


# -- lexer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # IDENTITY NUMBER STRING DOT PIPE REPLACE EQFILTER MERGE TRUE FALSE EOF
    text: str
    pos: int


_PUNCT = {"==": "EQFILTER", ":=": "REPLACE", "|": "PIPE", "+": "MERGE", ".": "DOT"}


def tokens(expression: str) -> list[Token]:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CaptureError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    out: list[Token] = []
    i, n = 0, len(expression)
    while i < n:
        if len(out) >= MAX_TOKENS:
            raise CaptureError(f"expression has more than {MAX_TOKENS} tokens")
        ch = expression[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == '"':
            end = expression.find('"', i + 1)
            if end < 0:
                raise CaptureError(f"unterminated string at position {i}")
            out.append(Token("STRING", expression[i + 1:end], i))
            i = end + 1
        elif ch.isascii() and ch.isdigit():
            j = i
            while j < n and expression[j].isascii() and expression[j].isdigit():
                j += 1
            if j - i > len(str(MAX_INDEX)):
                raise CaptureError(f"number at position {i} is too large")
            out.append(Token("NUMBER", expression[i:j], i))
            i = j
        elif ch.isascii() and ch.isalpha():
            j = i
            while j < n and (expression[j].isascii() and (expression[j].isalnum()
                                                          or expression[j] in "-_")):
                j += 1
            word = expression[i:j]
            kind = {"true": "TRUE", "false": "FALSE"}.get(word, "IDENTITY")
            out.append(Token(kind, word, i))
            i = j
        elif expression[i:i + 2] in _PUNCT:
            out.append(Token(_PUNCT[expression[i:i + 2]], expression[i:i + 2], i))
            i += 2
        elif ch in _PUNCT:
            out.append(Token(_PUNCT[ch], ch, i))
            i += 1
        else:
            raise CaptureError(f"unexpected character {ch!r} at position {i}")
    out.append(Token("EOF", "", n))
    return out


# -- parser ------------------------------------------------------------------------------

Step = str | int  # a map key or a list index


@dataclass(frozen=True)
class Path:
    steps: tuple[Step, ...]
    capture: str | None = None  # `capture.NAME.…`: walks that capture's state

    def __str__(self) -> str:
        head = (CAPTURE, self.capture) if self.capture is not None else ()
        return ".".join(str(s) for s in (*head, *self.steps))


Literal = str | int | bool


@dataclass(frozen=True)
class Expression:
    op: str  # "filter", "replace", "merge", "path"
    path: Path
    value: Literal | Path | None = None
    source: str | None = None  # `capture.NAME |`: the capture whose state is the input


class _Parser:
    def __init__(self, toks: list[Token]) -> None:
        self.toks, self.at = toks, 0

    def peek(self) -> Token:
        return self.toks[self.at]

    def take(self, *kinds: str) -> Token:
        tok = self.toks[self.at]
        if tok.kind not in kinds:
            found = "the end" if tok.kind == "EOF" else repr(tok.text)
            raise CaptureError(f"expected {' or '.join(k.lower() for k in kinds)} at position "
                               f"{tok.pos}, found {found}")
        self.at += 1
        return tok

    def path(self) -> Path:
        steps: list[Step] = [self.take("IDENTITY").text]
        while self.peek().kind == "DOT":
            self.at += 1
            tok = self.take("IDENTITY", "NUMBER")
            steps.append(int(tok.text) if tok.kind == "NUMBER" else tok.text)
            if len(steps) > MAX_STEPS:
                raise CaptureError(f"path longer than {MAX_STEPS} steps")
        if steps[0] != CAPTURE:
            return Path(tuple(steps))
        if len(steps) < 2 or not isinstance(steps[1], str):
            raise CaptureError("`capture` must be followed by a capture name")
        return Path(tuple(steps[2:]), capture=steps[1])

    def value(self) -> Literal | Path:
        tok = self.peek()
        if tok.kind == "STRING":
            self.at += 1
            return tok.text
        if tok.kind == "NUMBER":
            self.at += 1
            return int(tok.text)
        if tok.kind in ("TRUE", "FALSE"):
            self.at += 1
            return tok.kind == "TRUE"
        if tok.kind == "IDENTITY":
            ref = self.path()
            if ref.capture is None:
                raise CaptureError(f"the value at position {tok.pos} must be a string, a "
                                   "number, true/false or a capture path")
            return ref
        self.take("STRING", "NUMBER", "IDENTITY")  # raises, naming what was found
        raise AssertionError("unreachable")

    def expression(self) -> Expression:
        first = self.path()
        source = None
        if self.peek().kind == "PIPE":
            if first.capture is None or first.steps:
                raise CaptureError("only `capture.NAME` may come before `|`")
            self.at += 1
            source, first = first.capture, self.path()
        tok = self.peek()
        if tok.kind in ("EQFILTER", "REPLACE"):
            if first.capture is not None:
                raise CaptureError(f"the path before {tok.text!r} walks the input state; "
                                   "pipe a capture into it instead (`capture.NAME | …`)")
            self.at += 1
            expr = Expression("filter" if tok.kind == "EQFILTER" else "replace", first,
                              self.value(), source)
        elif tok.kind == "MERGE" and source is None and first.capture is not None:
            self.at += 1
            other = self.path()
            if other.capture is None:
                raise CaptureError("`+` merges two capture paths")
            expr = Expression("merge", first, other)
        elif tok.kind == "EOF" and source is None and first.capture is not None:
            expr = Expression("path", first)
        else:
            raise CaptureError(f"expected '==', ':=' or '+' at position {tok.pos}")
        self.take("EOF")
        return expr


def parse(expression: Any) -> Expression:
    if not isinstance(expression, str):
        raise CaptureError(f"expected an expression string, got {type(expression).__name__}")
    return _Parser(tokens(expression)).expression()


def parse_reference(text: str) -> Path | None:
    """The capture path of a `{{ capture.… }}` desiredState value; None for any other string."""
    match = REFERENCE_RE.match(text)
    if match is None:
        if "{{" in text and "}}" in text:
            raise CaptureError(f"{text[:80]!r}: a capture reference must be the whole value, "
                               "as \"{{ capture.NAME.path }}\"")
        return None
    toks = tokens(match.group(1))
    parser = _Parser(toks)
    ref = parser.path()
    parser.take("EOF")
    if ref.capture is None:
        raise CaptureError(f"{text[:80]!r}: only capture paths can be referenced "
                           "(\"{{ capture.NAME.path }}\")")
    return ref


def references(captures: Expression) -> set[str]:
    names = set() if captures.source is None else {captures.source}
    for part in (captures.path, captures.value):
        if isinstance(part, Path) and part.capture is not None:
            names.add(part.capture)
    return names


# -- evaluation --------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "number", str: "string", list: "list", dict: "map",
            type(None): "null"}.get(type(value), type(value).__name__)


def walk(state: Any, path: Path) -> Any:
    """The value `path` leads to (strict: a missing key or index is an error)."""
    value = state
    for i, step in enumerate(path.steps):
        where = ".".join(str(s) for s in path.steps[:i + 1])
        if isinstance(step, int):
            if not isinstance(value, list):
                raise CaptureError(f"{path}: {where} indexes a {_type_name(value)}, not a list")
            if step >= len(value):
                raise CaptureError(f"{path}: {where} is out of range (the list has "
                                   f"{len(value)} item{'s' if len(value) != 1 else ''})")
            value = value[step]
        else:
            if not isinstance(value, dict):
                raise CaptureError(f"{path}: {where} looks into a {_type_name(value)}, "
                                   "not a map")
            if step not in value:
                raise CaptureError(f"{path}: {where} is not in the captured state")
            value = value[step]
    return value


_NO_MATCH = object()


def _filter(value: Any, steps: tuple[Step, ...], wanted: Literal, top: bool) -> Any:
    """The part of `value` along `steps` whose last field equals `wanted`, or _NO_MATCH."""
    step, rest = steps[0], steps[1:]
    if isinstance(value, list):
        if isinstance(step, int):
            if step >= len(value):
                return _NO_MATCH
            kept = _filter(value[step], rest, wanted, False) if rest else _NO_MATCH
            return _NO_MATCH if kept is _NO_MATCH else [kept]
        items = [_filter(item, steps, wanted, False) for item in value]
        kept_items = [item for item in items if item is not _NO_MATCH]
        return kept_items or _NO_MATCH
    if not isinstance(value, dict) or isinstance(step, int):
        if top:
            raise CaptureError(f"step {step!r} does not fit a {_type_name(value)}")
        return _NO_MATCH
    if step not in value:
        if top:
            raise CaptureError(f"{step!r} is not in the state")
        return _NO_MATCH
    if not rest:
        have = value[step]
        if isinstance(have, (list, dict)) or have is None:
            return _NO_MATCH  # a filter compares scalars only (`wanted` is one)
        if type(have) is not type(wanted):
            raise CaptureError(f"type mismatch: {step} is a {_type_name(have)} ({have!r}), "
                               f"compared with a {_type_name(wanted)} ({wanted!r})")
        return dict(value) if have == wanted else _NO_MATCH
    inner = _filter(value[step], rest, wanted, top)
    if inner is _NO_MATCH:
        return _NO_MATCH
    # the top-level maps keep only the path's key (nmpolicy: the captured state is "a full
    # NMState state containing only the filtered values"); list items stay whole
    return {step: inner} if top else {**value, step: inner}


def _replace(value: Any, steps: tuple[Step, ...], new: Any, top: bool) -> Any:
    step, rest = steps[0], steps[1:]
    if isinstance(value, list):
        if isinstance(step, int):
            if step >= len(value):
                raise CaptureError(f"index {step} is out of range")
            out = list(value)
            out[step] = _replace(value[step], rest, new, False) if rest else new
            return out
        return [_replace(item, steps, new, False) for item in value]
    if not isinstance(value, dict) or isinstance(step, int):
        if top:
            raise CaptureError(f"step {step!r} does not fit a {_type_name(value)}")
        return value
    if not rest:
        return {**value, step: copy.deepcopy(new)}
    if step not in value:
        if top:
            raise CaptureError(f"{step!r} is not in the state")
        return value
    return {**value, step: _replace(value[step], rest, new, top)}


def _merge(left: Any, right: Any, path: Path) -> Any:
    if isinstance(left, list) and isinstance(right, list):
        return [*left, *right]
    if isinstance(left, dict) and isinstance(right, dict):
        return {**left, **right}
    raise CaptureError(f"cannot merge a {_type_name(left)} with a {_type_name(right)} at "
                       f"{'.'.join(map(str, path.steps)) or 'the top'}")


def _nest(steps: tuple[Step, ...], value: Any) -> Any:
    for step in reversed(steps):
        value = {str(step): value}
    return value


class Resolver:
    """Resolves the captures of one policy against one current state (and a cache)."""

    def __init__(self, captures: Mapping[str, Any], current: Mapping[str, Any],
                 cache: Mapping[str, Any] | None = None) -> None:
        self.exprs = parse_all(captures)
        self.current = current
        self.done: dict[str, Any] = {k: v for k, v in (cache or {}).items()
                                     if k in self.exprs and isinstance(v, dict)}
        self._active: list[str] = []

    def state(self, name: str) -> Any:
        if name in self.done:
            return self.done[name]
        if name not in self.exprs:
            raise CaptureError(f"capture {name!r} is not defined in spec.capture")
        if name in self._active:
            cycle = " -> ".join([*self._active[self._active.index(name):], name])
            raise CaptureError(f"captures refer to each other in a cycle: {cycle}")
        self._active.append(name)
        try:
            result = self._evaluate(self.exprs[name])
        except CaptureError as e:
            if e.capture is not None:  # named by the innermost capture that failed
                raise
            named = CaptureError(f"capture {name!r}: {e}")
            named.capture = name
            raise named from None
        finally:
            self._active.pop()
        self.done[name] = result
        return result

    def value(self, ref: Path) -> Any:
        assert ref.capture is not None
        state = self.state(ref.capture)
        if state == {} and ref.steps:
            raise CaptureError(f"{ref}: capture {ref.capture!r} is empty (its filter matched "
                               "nothing on this node)")
        return walk(state, ref)

    def _evaluate(self, expr: Expression) -> Any:
        if expr.op == "path":
            return _nest(expr.path.steps, copy.deepcopy(self.value(expr.path)))
        if expr.op == "merge":
            assert isinstance(expr.value, Path)
            if expr.path.steps != expr.value.steps:
                raise CaptureError("`+` needs the same path on both sides")
            merged = _merge(self.value(expr.path), self.value(expr.value), expr.path)
            return _nest(expr.path.steps, copy.deepcopy(merged))
        source = self.current if expr.source is None else self.state(expr.source)
        if expr.source is not None and source == {}:
            raise CaptureError(f"capture {expr.source!r} is empty (its filter matched "
                               "nothing on this node)")
        wanted = self.value(expr.value) if isinstance(expr.value, Path) else expr.value
        if expr.op == "filter":
            if isinstance(wanted, (list, dict)) or wanted is None:
                raise CaptureError(f"{expr.value} is a {_type_name(wanted)}; a filter "
                                   "compares with a string, a number or a boolean")
            kept = _filter(source, expr.path.steps, wanted, True)
            return {} if kept is _NO_MATCH else copy.deepcopy(kept)
        return copy.deepcopy(_replace(source, expr.path.steps, wanted, True))

    def all(self) -> dict[str, Any]:
        return {name: self.state(name) for name in self.exprs}


def parse_all(captures: Any) -> dict[str, Expression]:
    """spec.capture checked and parsed; CaptureError naming the first bad entry."""
    if captures is None:
        return {}
    if not isinstance(captures, dict):
        raise CaptureError(f"spec.capture must map capture names to expressions, got "
                           f"{_type_name(captures)}")
    if len(captures) > MAX_CAPTURES:
        raise CaptureError(f"spec.capture has more than {MAX_CAPTURES} entries")
    out: dict[str, Expression] = {}
    for name, expression in captures.items():
        if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > 253:
            raise CaptureError(f"spec.capture: {str(name)[:80]!r} is not a capture name "
                               "(a letter, then letters, digits, '-' or '_')")
        try:
            out[name] = parse(expression)
        except CaptureError as e:
            raise CaptureError(f"capture {name!r}: {e}") from None
    for name, expr in out.items():
        for ref in sorted(references(expr) - out.keys()):
            raise CaptureError(f"capture {name!r}: capture {ref!r} is not defined in "
                               "spec.capture")
    return out


def _expand(value: Any, resolver: Resolver | None, names: set[str], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CaptureError(f"desiredState is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return {k: _expand(v, resolver, names, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, resolver, names, depth + 1) for v in value]
    if isinstance(value, str):
        ref = parse_reference(value)
        if ref is None:
            return value
        assert ref.capture is not None
        if ref.capture not in names:
            raise CaptureError(f"{value!r}: capture {ref.capture!r} is not defined in "
                               "spec.capture")
        return value if resolver is None else copy.deepcopy(resolver.value(ref))
    return value


def has_references(desired: Any) -> bool:
    """Whether the desired state holds any `{{ … }}` value (bounded like the expansion)."""
    stack: list[tuple[Any, int]] = [(desired, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]
        elif isinstance(value, str) and "{{" in value:
            return True
    return False


# Admission checks a desired state with references against the schema too: a reference
# standing for a key the schema requires becomes a stand-in of the right kind (the node
# checks the real value later), any other reference is left out.
_STAND_INS: dict[str, Any] = {"base-iface": "capture-ref", "next-hop-interface": "capture-ref",
                              "name": "capture-ref", "id": 1, "destination": "0.0.0.0/0"}
_FAMILY_STAND_INS = {"ipv4": {"ip": "192.0.2.1", "prefix-length": 24},
                     "ipv6": {"ip": "2001:db8::1", "prefix-length": 64}}


def without_references(value: Any) -> Any:
    """`value` with each `{{ … }}` replaced by a stand-in or left out (see _STAND_INS);
    stand-in names are unique so that they do not collide with each other."""
    counter = 0

    def stand_in(key: Any, family: str) -> Any:
        nonlocal counter
        if not isinstance(key, str):
            return None
        found = _FAMILY_STAND_INS.get(family, {}).get(key, _STAND_INS.get(key))
        if found == "capture-ref":
            counter += 1
            return f"capref{counter}"
        return found

    def walk(v: Any, depth: int, family: str) -> Any:
        if depth > MAX_DEPTH:
            raise CaptureError(f"desiredState is nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, dict):
            out: dict[Any, Any] = {}
            for key, item in v.items():
                if _is_reference(item):
                    if (replacement := stand_in(key, family)) is not None:
                        out[key] = replacement
                    continue
                out[key] = walk(item, depth + 1, key if key in _FAMILY_STAND_INS else family)
            return out
        if isinstance(v, list):
            return [walk(item, depth + 1, family) for item in v if not _is_reference(item)]
        return v

    return walk(value, 0, "")


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and REFERENCE_RE.match(value) is not None


def check(captures: Any, desired: Any) -> None:
    """Admission: the expressions parse, and every reference names a defined capture."""
    names = set(parse_all(captures))
    _expand(desired, None, names, 0)


@dataclass
class Generated:
    captured: dict[str, Any]  # name -> captured state
    desired: Any  # the desired state with every reference replaced


def generate(captures: Any, desired: Any, current: Mapping[str, Any],
             cache: Mapping[str, Any] | None = None) -> Generated:
    """Resolve every capture (those in `cache` are reused) and expand the references."""
    resolver = Resolver(captures or {}, current, cache)
    captured = resolver.all()
    expanded = _expand(desired, resolver, set(resolver.exprs), 0)
    return Generated(captured, expanded)
