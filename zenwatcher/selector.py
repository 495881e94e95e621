"""Kubernetes label selectors (WATCH_NAMESPACE_SELECTOR), checked before they are sent.

The API server does the filtering (a list and watch of Namespaces with `labelSelector`); this
parser only refuses at start what the server would refuse later, with the reason. It accepts
the server's grammar: requirements separated by commas, each `key`, `!key`, `key=value`,
`key==value`, `key!=value`, `key in (v1,v2)` or `key notin (v1,v2)`. `matches` evaluates a
parsed selector the way the server does, for tests and documentation of the semantics.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SET = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$", re.DOTALL)
_COMPARE = re.compile(r"^([^=!\s]+)\s*(==|=|!=)\s*(.*)$", re.DOTALL)
OPERATORS = ("exists", "!", "=", "!=", "in", "notin")


class SelectorError(ValueError):
    """A selector the API server would refuse; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """One clause: `operator` is one of OPERATORS (`==` is read as `=`)."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        # != and notin match objects without the key too, as on the API server.
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True, slots=True)
class Selector:
    """All requirements must hold; no requirement selects everything."""

    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)


def parse(text: str) -> Selector:
    """The selector `text` (surrounding blanks ignored); SelectorError if malformed."""
    return Selector(tuple(_requirement(part.strip()) for part in _split(text) if part.strip()))


def _split(text: str) -> list[str]:
    """Commas separate requirements, except inside the parentheses of a set."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
            if depth > 1:
                raise SelectorError(f"nested parentheses at position {index}")
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' at position {index}")
        elif char == "," and depth == 0:
            if not text[start:index].strip():
                raise SelectorError(f"empty requirement before position {index}")
            parts.append(text[start:index])
            start = index + 1
    if depth:
        raise SelectorError("unclosed '('")
    if parts and not text[start:].strip():
        raise SelectorError("empty requirement after the last ','")
    parts.append(text[start:])
    return parts


def _requirement(clause: str) -> Requirement:
    if match := _SET.match(clause):
        key, operator, inside = match.groups()
        values = [value.strip() for value in inside.split(",")]
        if values == [""]:
            raise SelectorError(f"{clause!r}: a set needs at least one value")
        return Requirement(_key(key), operator, frozenset(_value(value) for value in values))
    if match := _COMPARE.match(clause):
        key, operator, value = match.groups()
        operator = "=" if operator == "==" else operator
        return Requirement(_key(key), operator, frozenset({_value(value.strip())}))
    if clause.startswith("!"):
        return Requirement(_key(clause[1:].strip()), "!")
    if any(char in clause for char in "=!() \t"):
        raise SelectorError(
            f"{clause!r} is not a requirement (key, !key, key=value, key!=value, "
            "key in (a,b) or key notin (a,b))"
        )
    return Requirement(_key(clause), "exists")


def _key(key: str) -> str:
    """A label key: an optional DNS-subdomain prefix and '/', then a name of at most 63."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        raise SelectorError(f"{key!r}: the prefix before '/' must be a DNS subdomain")
    if not _NAME.match(name):
        raise SelectorError(
            f"{key!r} is not a label key (letters, digits, '-', '_', '.', at most 63, "
            "starting and ending with a letter or digit)"
        )
    return key


def _value(value: str) -> str:
    if not _VALUE.match(value):
        raise SelectorError(
            f"{value!r} is not a label value (empty, or letters, digits, '-', '_', '.', at "
            "most 63, starting and ending with a letter or digit)"
        )
    return value
