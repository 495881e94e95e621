"""The `expression` key of `filter.json`: the original operator's filter language.

    (spec.severity >= 'high' OR is_compliance) AND spec.resource.namespace NOT IN ['kube-system']

A tokenizer, a recursive-descent parser to an AST, and an evaluator. `parse_expression` runs once
per configuration and compiles every node to a closure over the `Finding`, so an event pays for
the fields the expression names and nothing else: no Observation is built. Field paths are the
Observation's (`spec.severity`, `spec.resource.namespace`, `spec.details.rule`), read from the
finding the way `observation.to_observation` names them (see `SPEC_FIELDS`).

Semantics follow the original (kube-zen/zen-watcher `pkg/filter/expression.go`): strings compare
case-insensitively, numbers numerically, severities by rank (critical > high > medium > low >
info); a missing field is equal to nothing and fails every test but `!=`, `NOT IN` and
`NOT EXISTS`. Unlike the original, an expression that does not parse, names an unknown field or
macro, or compares `spec.severity` with a word that is not a severity is an `ExpressionError`
carrying the position, never a silent pass. Pure: no I/O.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from zenwatcher.finding import Finding, Severity
from zenwatcher.observation import MAX_MESSAGE_CHARS, MAX_TITLE_CHARS, clip

# Parentheses and NOT nest by recursion; deeper than this is refused, not a RecursionError.
MAX_DEPTH = 64
MAX_CHARS = 16384  # a ConfigMap value, not a program

Accessor = Callable[[Finding], Any]
Test = Callable[[Finding], bool]


class ExpressionError(ValueError):
    """An expression that cannot be used: what is wrong and where (`position` counts from 0)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"at character {position + 1}: {message}")
        self.position = position


# --- what a field path reads -------------------------------------------------------------------


def _resource_field(name: str) -> Accessor:
    def read(finding: Finding) -> Any:
        # to_spec leaves empty fields out, so "" is absent here too.
        return (getattr(finding.resource, name) or None) if finding.resource else None

    return read


# `spec.<name>` as observation.to_observation writes it. detectedAt and ttlSecondsAfterCreation
# are set when the Observation is written, from the clock and a setting: not the finding's.
SPEC_FIELDS: dict[str, Accessor] = {
    "source": lambda finding: finding.source,
    # The enums are strs equal to their values; reading .value would cost a property call.
    "category": lambda finding: finding.category,
    "severity": lambda finding: finding.severity,
    "eventType": lambda finding: finding.event_type,
    "title": lambda finding: clip(finding.title, MAX_TITLE_CHARS),
    "message": lambda finding: clip(finding.message, MAX_MESSAGE_CHARS),
    "fingerprint": lambda finding: finding.fingerprint,
    "details": lambda finding: finding.details,
    "resource": lambda finding: (finding.resource.to_spec() or None) if finding.resource else None,
}
RESOURCE_FIELDS: dict[str, Accessor] = {
    "apiVersion": _resource_field("api_version"),
    "kind": _resource_field("kind"),
    "name": _resource_field("name"),
    "namespace": _resource_field("namespace"),
    "uid": _resource_field("uid"),
}
_WRITE_TIME_FIELDS = frozenset({"detectedAt", "ttlSecondsAfterCreation"})

SEVERITY_RANKS: dict[str, int] = {level.value: level.rank for level in Severity}
MACROS: dict[str, tuple[Accessor, str]] = {
    "is_critical": (SPEC_FIELDS["severity"], Severity.CRITICAL.value),
    "is_high": (SPEC_FIELDS["severity"], Severity.HIGH.value),
    "is_security": (SPEC_FIELDS["category"], "security"),
    "is_compliance": (SPEC_FIELDS["category"], "compliance"),
}


def _details_path(parts: tuple[str, ...]) -> Accessor:
    """A path under `spec.details`. Detail keys may hold dots themselves (Falco's
    `k8s.ns.name`), so at each level the longest key made of the next parts wins."""
    # For each part, the keys that may start there, longest first, and where each ends.
    cuts = [
        [(".".join(parts[begin:end]), end) for end in range(len(parts), begin, -1)]
        for begin in range(len(parts))
    ]

    def lookup(value: Any, begin: int) -> Any:
        if begin == len(parts):
            return value
        if not isinstance(value, Mapping):
            return None
        for key, end in cuts[begin]:
            found = value.get(key)
            if found is not None:
                found = lookup(found, end)
                if found is not None:
                    return found
        return None

    def read(finding: Finding) -> Any:
        return lookup(finding.details, 0)

    return read


def field_accessor(path: str, position: int) -> Accessor:
    """The reader of a dotted path; `ExpressionError` for a path no Observation has."""
    parts = tuple(path.split("."))
    known = ", ".join(f"spec.{name}" for name in SPEC_FIELDS)
    if len(parts) == 1 and parts[0] != "spec":
        raise ExpressionError(
            f"unknown field {path!r}: quote a string ('{path}') or name a field ({known})",
            position,
        )
    if parts[0] != "spec" or len(parts) < 2:
        raise ExpressionError(f"unknown field {path!r} (fields: {known})", position)
    name, rest = parts[1], parts[2:]
    if name in _WRITE_TIME_FIELDS:
        raise ExpressionError(
            f"{path} is set when the Observation is written, not filtered", position
        )
    if name not in SPEC_FIELDS:
        raise ExpressionError(f"unknown field {path!r} (fields: {known})", position)
    if name == "details" and rest:
        return _details_path(rest)
    if name == "resource" and rest:
        if len(rest) != 1 or rest[0] not in RESOURCE_FIELDS:
            fields = ", ".join(f"spec.resource.{key}" for key in RESOURCE_FIELDS)
            raise ExpressionError(f"unknown field {path!r} (fields: {fields})", position)
        return RESOURCE_FIELDS[rest[0]]
    if rest:
        raise ExpressionError(f"{path!r}: spec.{name} has no fields", position)
    return SPEC_FIELDS[name]


# --- values ------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A scalar as the text operators compare, casefolded; None for absent or composite values."""
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    # Most strings are words: skip float()'s exception for them.
    if isinstance(value, str) and value[:1] in _NUMBER_STARTS:
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


_NUMBER_STARTS = frozenset("+-.0123456789 ")

# A value ready to compare: (casefolded text, number, severity rank), each None when it has none.
Scalar = tuple[str | None, float | None, int | None]


def _scalar(value: Any) -> Scalar:
    text = _text(value)
    return text, _number(value), None if text is None else SEVERITY_RANKS.get(text)


def _equal(left: Scalar, right: Scalar) -> bool:
    if left[1] is not None and right[1] is not None:
        return left[1] == right[1]
    return left[0] is not None and left[0] == right[0]


def _order(left: Scalar, right: Scalar) -> int | None:
    """-1, 0 or 1: as numbers, else as severities, else as text; None when they do not compare."""
    for index in (1, 2, 0):
        one, other = left[index], right[index]
        if one is not None and other is not None:
            return (one > other) - (one < other)  # type: ignore[operator]
    return None


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


# --- the AST -----------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Node:
    """A condition: its source span and the compiled test."""

    start: int
    end: int
    test: Test

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(slots=True, eq=False)
class AnyOf(Node):
    parts: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.parts


@dataclass(slots=True, eq=False)
class AllOf(Node):
    parts: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.parts


@dataclass(slots=True, eq=False)
class Negation(Node):
    operand: Node

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(slots=True, eq=False)
class Condition(Node):
    """A comparison, a macro or a boolean literal; `fields` are the paths it reads."""

    fields: tuple[tuple[str, Accessor], ...]


@dataclass(slots=True, frozen=True)
class Operand:
    """One side of a comparison: a field (path and reader) or a literal value."""

    start: int
    end: int
    path: str | None = None
    read: Accessor | None = None
    value: Any = None  # a literal: str, float, bool or a tuple of those


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why an expression was false: the deciding clause's text and the fields it read."""

    clause: str
    values: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression: `matches` per event, `explain` for the ones it drops."""

    source: str
    root: Node

    def matches(self, finding: Finding) -> bool:
        return self.root.test(finding)

    def explain(self, finding: Finding) -> Explanation:
        """The clause that made the expression false (or true): AND names its first false part,
        OR its first true part; a false OR, a true AND and NOT name themselves."""
        node = _deciding(self.root, finding)
        values: dict[str, Any] = {}
        for condition in _conditions(node):
            for path, read in condition.fields:
                values.setdefault(path, read(finding))
        return Explanation(self.source[node.start : node.end], tuple(values.items()))


def _deciding(node: Node, finding: Finding) -> Node:
    if isinstance(node, AllOf | AnyOf):
        wanted = isinstance(node, AnyOf)  # the part that decides: a true one of OR, false of AND
        if node.test(finding) is wanted:
            for part in node.parts:
                if part.test(finding) is wanted:
                    return _deciding(part, finding)
    return node


def _conditions(node: Node) -> Iterator[Condition]:
    if isinstance(node, Condition):
        yield node
    for child in node.children():
        yield from _conditions(child)


# --- tokens ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9_.]))
  | (?P<op>!=|>=|<=|=|>|<)
  | (?P<punct>[()\[\],])
  | (?P<word>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*)
    """,
    re.VERBOSE | re.ASCII | re.DOTALL,
)
_KEYWORDS = frozenset(
    {"and", "or", "not", "in", "contains", "starts_with", "ends_with", "exists", "true", "false"}
)
_ESCAPES = {"n": "\n", "t": "\t"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # string, number, op, punct, word, keyword (text casefolded), end
    text: str
    start: int
    end: int

    def describe(self) -> str:
        return "the end of the expression" if self.kind == "end" else repr(self.text)


def tokenize(source: str) -> list[Token]:
    """The tokens of `source`, ending with an `end` token."""
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            char = source[position]
            if char in "'\"":
                raise ExpressionError(f"unterminated string (no closing {char})", position)
            if char in "-0123456789":
                raise ExpressionError("malformed number", position)
            raise ExpressionError(f"unexpected character {char!r}", position)
        kind, text = match.lastgroup or "", match.group()
        if kind == "word" and text.casefold() in _KEYWORDS:
            kind, text = "keyword", text.casefold()
        if kind != "space":
            tokens.append(Token(kind, text, position, match.end()))
        position = match.end()
    tokens.append(Token("end", "", len(source), len(source)))
    return tokens


def _unquote(text: str) -> str:
    body, out, index = text[1:-1], [], 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            index += 1
            char = _ESCAPES.get(body[index], body[index])
        out.append(char)
        index += 1
    return "".join(out)


# --- the parser --------------------------------------------------------------------------------


def parse_expression(source: str) -> Expression:
    """Parse and compile `source`; `ExpressionError` (with the position) when it cannot be used."""
    if len(source) > MAX_CHARS:
        raise ExpressionError(f"longer than {MAX_CHARS} characters", MAX_CHARS)
    parser = _Parser(source, tokenize(source))
    root = parser.disjunction(depth=0)
    token = parser.peek()
    if token.kind != "end":
        raise ExpressionError(f"expected AND, OR or the end, found {token.describe()}", token.start)
    return Expression(source, root)


class _Parser:
    """expr := and (OR and)*; and := unary (AND unary)*; unary := NOT unary | primary;
    primary := '(' expr ')' | macro | operand [operator [operand]]."""

    def __init__(self, source: str, tokens: list[Token]) -> None:
        self._source = source
        self._tokens = tokens
        self._index = 0

    def peek(self, ahead: int = 0) -> Token:
        return self._tokens[min(self._index + ahead, len(self._tokens) - 1)]

    def _next(self) -> Token:
        token = self.peek()
        self._index += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "keyword" and token.text == word

    def disjunction(self, depth: int) -> Node:
        parts = [self._conjunction(depth)]
        while self._keyword("or"):
            self._next()
            parts.append(self._conjunction(depth))
        if len(parts) == 1:
            return parts[0]
        return AnyOf(parts[0].start, parts[-1].end, _any(parts), tuple(parts))

    def _conjunction(self, depth: int) -> Node:
        parts = [self._unary(depth)]
        while self._keyword("and"):
            self._next()
            parts.append(self._unary(depth))
        if len(parts) == 1:
            return parts[0]
        return AllOf(parts[0].start, parts[-1].end, _all(parts), tuple(parts))

    def _unary(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"nested more than {MAX_DEPTH} deep", self.peek().start)
        if self._keyword("not"):
            start = self._next().start
            operand = self._unary(depth + 1)
            test = operand.test
            return Negation(start, operand.end, lambda f: not test(f), operand)
        return self._primary(depth)

    def _primary(self, depth: int) -> Node:
        token = self.peek()
        if token.kind == "punct" and token.text == "(":
            self._next()
            inner = self.disjunction(depth + 1)
            closing = self._next()
            if closing.text != ")" or closing.kind != "punct":
                raise ExpressionError(
                    f"expected ')' to close the '(' at character {token.start + 1}, "
                    f"found {closing.describe()}",
                    closing.start,
                )
            inner.start, inner.end = token.start, closing.end
            return inner
        if (
            token.kind == "word"
            and token.text.casefold().startswith("is_")
            and "." not in token.text
        ):
            return self._macro(self._next())
        left = self._operand(in_list=False)
        operator = self._operator()
        if operator is None:
            if isinstance(left.value, bool) and left.path is None:
                constant = left.value
                return Condition(left.start, left.end, lambda f: constant, ())
            found = self.peek()
            raise ExpressionError(
                f"expected an operator after {self._source[left.start : left.end]!r}, "
                f"found {found.describe()}",
                found.start,
            )
        name, at = operator
        if name in ("EXISTS", "NOT EXISTS"):
            return self._existence(name, left)
        right = self._operand(in_list=False)
        return self._comparison(name, at, left, right)

    def _macro(self, token: Token) -> Condition:
        name = token.text.casefold()
        if name not in MACROS:
            raise ExpressionError(
                f"unknown macro {token.text!r} (macros: {', '.join(MACROS)})", token.start
            )
        read, wanted = MACROS[name]
        path = "spec.severity" if name in ("is_critical", "is_high") else "spec.category"
        return Condition(token.start, token.end, lambda f: read(f) == wanted, ((path, read),))

    def _operator(self) -> tuple[str, int] | None:
        token = self.peek()
        if token.kind == "op":
            self._next()
            return token.text, token.start
        if token.kind != "keyword":
            return None
        if token.text in ("in", "contains", "starts_with", "ends_with", "exists"):
            self._next()
            return token.text.upper(), token.start
        if token.text == "not":
            after = self.peek(1)
            if after.kind == "keyword" and after.text in ("in", "exists"):
                self._index += 2
                return f"NOT {after.text.upper()}", token.start
            raise ExpressionError(
                f"expected IN or EXISTS after NOT, found {after.describe()}", after.start
            )
        return None

    def _operand(self, *, in_list: bool) -> Operand:
        token = self._next()
        if token.kind == "string":
            return Operand(token.start, token.end, value=_unquote(token.text))
        if token.kind == "number":
            return Operand(token.start, token.end, value=float(token.text))
        if token.kind == "keyword" and token.text in ("true", "false"):
            return Operand(token.start, token.end, value=token.text == "true")
        if token.kind == "word":
            if in_list:  # the original reads a bare word in a list as a string
                return Operand(token.start, token.end, value=token.text)
            return Operand(
                token.start,
                token.end,
                path=token.text,
                read=field_accessor(token.text, token.start),
            )
        if token.kind == "punct" and token.text == "[" and not in_list:
            return self._list(token)
        wanted = "a value" if in_list else "a field, a string, a number or a list"
        raise ExpressionError(f"expected {wanted}, found {token.describe()}", token.start)

    def _list(self, opening: Token) -> Operand:
        items: list[Any] = []
        while not (self.peek().kind == "punct" and self.peek().text == "]"):
            items.append(self._operand(in_list=True).value)
            separator = self.peek()
            if separator.kind == "punct" and separator.text == ",":
                self._next()
            elif not (separator.kind == "punct" and separator.text == "]"):
                raise ExpressionError(
                    f"expected ',' or ']' in the list opened at character {opening.start + 1}, "
                    f"found {separator.describe()}",
                    separator.start,
                )
        closing = self._next()
        return Operand(opening.start, closing.end, value=tuple(items))

    def _existence(self, name: str, left: Operand) -> Condition:
        end = self._tokens[self._index - 1].end
        if left.read is None:
            raise ExpressionError(f"{name} needs a field on its left", left.start)
        read, path = left.read, left.path or ""
        if name == "EXISTS":
            return Condition(left.start, end, lambda f: read(f) is not None, ((path, read),))
        return Condition(left.start, end, lambda f: read(f) is None, ((path, read),))

    def _comparison(self, name: str, at: int, left: Operand, right: Operand) -> Condition:
        membership = name in ("IN", "NOT IN")
        for side in (left, right):
            if isinstance(side.value, tuple) and not (side is right and membership):
                raise ExpressionError("a list only goes on the right of IN or NOT IN", side.start)
        if membership and right.read is None and not isinstance(right.value, tuple):
            raise ExpressionError(f"{name} needs a list or a field on its right", right.start)
        if name not in ("CONTAINS", "STARTS_WITH", "ENDS_WITH"):
            _check_severity_words(left, right)
        test = _compile(name, left, right)
        fields = tuple((side.path, side.read) for side in (left, right) if side.read and side.path)
        return Condition(left.start, right.end, test, fields)


def _any(parts: list[Node]) -> Test:
    tests = tuple(part.test for part in parts)

    def test(finding: Finding) -> bool:
        for one in tests:  # noqa: SIM110 - any() over a generator costs more than most clauses
            if one(finding):
                return True
        return False

    return test


def _all(parts: list[Node]) -> Test:
    tests = tuple(part.test for part in parts)

    def test(finding: Finding) -> bool:
        for one in tests:  # noqa: SIM110 - as in _any
            if not one(finding):
                return False
        return True

    return test


def _check_severity_words(left: Operand, right: Operand) -> None:
    """`spec.severity` compared with a word that is no severity is a typo, not a false."""
    for field, other in ((left, right), (right, left)):
        if field.path != "spec.severity" or other.read is not None:
            continue
        words = other.value if isinstance(other.value, tuple) else (other.value,)
        for word in words:
            if not isinstance(word, str) or word.casefold() not in SEVERITY_RANKS:
                raise ExpressionError(
                    f"{word!r} is not a severity (severities: {', '.join(SEVERITY_RANKS)})",
                    other.start,
                )


def _reader(side: Operand) -> Accessor:
    if side.read is not None:
        return side.read
    constant = side.value
    return lambda finding: constant


def _compile(name: str, left_side: Operand, right_side: Operand) -> Test:
    """The comparison as a closure; a literal right side is prepared once, here."""
    left, right = _reader(left_side), _reader(right_side)
    literal = right_side.read is None
    if name in ("IN", "NOT IN"):
        return _membership(name == "IN", left, right, right_side.value if literal else None)
    if name in ("CONTAINS", "STARTS_WITH", "ENDS_WITH"):
        return _text_test(name, left, right, right_side.value if literal else None)
    if name in ("=", "!="):
        return _equality(name == "=", left, right, right_side)
    accept = _ORDERINGS[name]
    if literal and left_side.path == "spec.severity":
        rank = SEVERITY_RANKS[str(right_side.value).casefold()]
        accepted = frozenset(level.value for level in Severity if accept(level.rank, rank))
        return lambda f: f.severity in accepted

    def ordered(finding: Finding) -> bool:
        sign = _order(_scalar(left(finding)), _scalar(right(finding)))
        return sign is not None and accept(sign, 0)

    return ordered


def _equality(wanted: bool, left: Accessor, right: Accessor, right_side: Operand) -> Test:
    if right_side.read is not None:
        return lambda f: _present_equal(left(f), _scalar(right(f))) is wanted
    prepared = _scalar(right_side.value)
    if prepared[1] is None:  # a word: equal means equal text, the common case
        text = prepared[0]
        return lambda f: (_text(left(f)) == text) is wanted
    return lambda f: _present_equal(left(f), prepared) is wanted


def _present_equal(value: Any, other: Scalar) -> bool:
    return value is not None and _equal(_scalar(value), other)


def _membership(wanted: bool, left: Accessor, right: Accessor, items: Any) -> Test:
    if items is not None:
        choices = tuple(_scalar(item) for item in items)
        if all(choice[1] is None for choice in choices):  # words only: a set lookup
            texts = frozenset(choice[0] for choice in choices)
            return lambda f: (_text(left(f)) in texts) is wanted
        return lambda f: _within(left(f), choices) is wanted
    return lambda f: _within(left(f), _items(right(f))) is wanted


def _items(value: Any) -> tuple[Scalar, ...]:
    if isinstance(value, list | tuple):
        return tuple(_scalar(item) for item in value)
    return ()


def _within(value: Any, choices: tuple[Scalar, ...]) -> bool:
    if value is None:
        return False
    prepared = _scalar(value)
    return any(_equal(prepared, choice) for choice in choices)


def _text_test(name: str, left: Accessor, right: Accessor, literal: Any) -> Test:
    """CONTAINS is a substring test on text and a membership test on a list field."""
    check: Callable[[str, str], bool] = {  # type: ignore[assignment]
        "CONTAINS": operator.contains,
        "STARTS_WITH": str.startswith,
        "ENDS_WITH": str.endswith,
    }[name]
    on_lists = name == "CONTAINS"
    prepared = _text(literal)

    def test(finding: Finding) -> bool:
        subject = left(finding)
        wanted = prepared if prepared is not None else _text(right(finding))
        if wanted is None:
            return False
        if isinstance(subject, str):
            return check(subject.casefold(), wanted)
        if on_lists and isinstance(subject, list | tuple):
            return any(_text(item) == wanted for item in subject)
        text = _text(subject)
        return text is not None and check(text, wanted)

    return test
