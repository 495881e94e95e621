"""The finding every source maps to, and its identity.

A `Finding` keeps the fields that say *what* was found *where* (its identity) apart from the
volatile ones (times, counts, free text), so the fingerprint, and the Observation name derived
from it, is the same on every replica, after every restart and failover (docs/design.md §3).
Pure: no I/O, no clock of its own.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NewType

import orjson

Fingerprint = NewType("Fingerprint", str)
ObservationName = NewType("ObservationName", str)
# Keeps `<source>-<16 hex>` inside a 63-character label value and a DNS-1123 name.
MAX_SOURCE_LEN = 46
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
_EVENT_TYPE_JUNK = re.compile(r"[^a-z0-9_]+")


class Severity(enum.StrEnum):
    """Observation severities, most severe first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """4 for critical down to 0 for info, so severities compare by number."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}


class Category(enum.StrEnum):
    """What kind of concern a finding is."""

    SECURITY = "security"
    COMPLIANCE = "compliance"
    PERFORMANCE = "performance"
    OPERATIONS = "operations"
    COST = "cost"


# ResourceRef and Finding are built for every webhook event, repeats included: not frozen, since a
# frozen dataclass sets each field through object.__setattr__ (3x the cost). Nothing mutates them;
# a changed copy is made with dataclasses.replace.
@dataclass(slots=True, kw_only=True)
class ResourceRef:
    """The affected Kubernetes object, as far as the tool told us."""

    api_version: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""
    uid: str = ""

    def to_spec(self) -> dict[str, str]:
        """The `spec.resource` object, without empty fields."""
        fields = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
        }
        return {key: value for key, value in fields.items() if value}

    def describe(self) -> str:
        """`Kind/namespace/name`, for printer columns and log lines."""
        parts = [self.kind, self.namespace, self.name]
        return "/".join(part for part in parts if part)


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    """The report a finding came from (report sources only)."""

    uid: str
    key: str  # stable across trivy's delete-and-recreate: digest of group/kind/namespace/name


class DeferredDetails(Mapping[str, Any]):
    """A finding's details, built on first read.

    Most webhook events repeat a finding the dedup cache already holds, and a repeat never needs
    its details; building them only for the events that are written saves the hot path that work.
    The builder (and the raw event it holds) is dropped once the details exist.
    """

    __slots__ = ("_build", "_built")

    def __init__(self, build: Callable[[], dict[str, Any]]) -> None:
        self._build: Callable[[], dict[str, Any]] | None = build
        self._built: dict[str, Any] = {}

    def _details(self) -> dict[str, Any]:
        if self._build is not None:
            self._built, self._build = self._build(), None
        return self._built

    def __getitem__(self, key: str) -> Any:
        return self._details()[key]

    # Mapping's own get and `in` go through __getitem__ and a KeyError for every missing key.
    def get(self, key: str, default: Any = None) -> Any:
        return self._details().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._details()

    def __iter__(self) -> Iterator[str]:
        return iter(self._details())

    def __len__(self) -> int:
        return len(self._details())

    def __repr__(self) -> str:
        return f"DeferredDetails({self._details()!r})"


@dataclass(slots=True, kw_only=True)
class Finding:
    """One finding from one tool, before it becomes an Observation.

    `identity` holds only the fields that say what was found where; everything in it goes into
    the fingerprint, nothing else does.
    """

    source: str
    category: Category
    severity: Severity
    event_type: str
    identity: tuple[str, ...]
    resource: ResourceRef | None = None
    title: str = ""
    message: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    detected_at: datetime | None = None  # the tool's own time; None = when it arrived
    origin: Origin | None = None

    @property
    def fingerprint(self) -> Fingerprint:
        """Hex sha256 of source and identity."""
        return fingerprint_of(self.source, self.identity)

    @property
    def name(self) -> ObservationName:
        """The Observation's name: `<source>-<first 16 hex of the fingerprint>`."""
        return name_for(self.source, self.fingerprint)

    @property
    def namespace(self) -> str:
        """The affected resource's namespace, or "" when the finding has none."""
        return self.resource.namespace if self.resource else ""


def slugify(text: str, *, default: str = "unknown") -> str:
    """Lowercase `[a-z0-9-]` slug of a tool name, short enough for names and labels."""
    slug = _SLUG_JUNK.sub("-", text.lower()).strip("-")[:MAX_SOURCE_LEN].strip("-")
    return slug or default


def event_type_slug(text: str) -> str:
    """Lowercase `[a-z0-9_]` form of an event type."""
    return _EVENT_TYPE_JUNK.sub("_", text.lower()).strip("_") or "unknown"


def fingerprint_of(source: str, identity: tuple[str, ...]) -> Fingerprint:
    """sha256 over an unambiguous encoding (a JSON array), so ("a b", "c") != ("a", "b c")."""
    encoded = orjson.dumps([source, *identity])
    return Fingerprint(hashlib.sha256(encoded).hexdigest())


def name_for(source: str, fingerprint: Fingerprint) -> ObservationName:
    """`<source>-<16 hex>`: a valid DNS-1123 subdomain for any slug source."""
    return ObservationName(f"{_source_slug(source)}-{fingerprint[:16]}")


# Sources are a handful of tool names, slugged once per event otherwise.
_source_slug = functools.lru_cache(maxsize=256)(slugify)
