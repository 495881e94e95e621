"""Which metric series moved during a scenario, and which documented ones never did.

What must move is derived, not listed: every family a fresh `Metrics` registers; every label
value it pre-seeds; every `Bucket`; and the label values docs/design.md §8 names (the reason
column of the bucket table, and the `: a, b, c` lists of the families table). A series has
moved when a sample ever differed from its value in a fresh registry (for a histogram, its
count), so a gauge that rose and fell back still counts.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.paths import REPO_ROOT
from zenwatcher.metrics import Bucket, Metrics

DESIGN = REPO_ROOT / "docs/design.md"
EVENTS = "zen_watcher_events_total"
Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Expectation:
    """Some moved series of `family` must carry `labels` (a value ending in `<…>` is a prefix)."""

    family: str
    labels: tuple[tuple[str, str], ...]
    origin: str

    def met_by(self, labels: Mapping[str, str]) -> bool:
        for name, wanted in self.labels:
            value = labels.get(name)
            if value is None:
                return False
            prefix = re.fullmatch(r"(.*)<[^>]*>", wanted)
            if not (value.startswith(prefix.group(1)) if prefix else value == wanted):
                return False
        return True

    def __str__(self) -> str:
        labels = ", ".join(f'{name}="{value}"' for name, value in self.labels)
        return f"{self.family}{{{labels}}} ({self.origin})"


def _samples(families: Iterable[object]) -> dict[tuple[str, Labels], float]:
    """(family name, labels) -> value; counters as `<name>_total`, histograms by their count."""
    values: dict[tuple[str, Labels], float] = {}
    for family in families:
        name, kind = family.name, family.type  # type: ignore[attr-defined]
        if name.startswith(("process_", "python_")):
            continue
        for sample in family.samples:  # type: ignore[attr-defined]
            wanted = {"counter": f"{name}_total", "histogram": f"{name}_count"}.get(kind, name)
            if sample.name == wanted:
                key_name = f"{name}_total" if kind == "counter" else name
                values[(key_name, frozenset(sample.labels.items()))] = sample.value
    return values


def fresh_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Metrics(registry)
    return registry


def initial_samples() -> dict[tuple[str, Labels], float]:
    return _samples(fresh_registry().collect())


def family_names() -> set[str]:
    """Every family a fresh Metrics registers (counters named with `_total`)."""
    names = set()
    for family in fresh_registry().collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


@dataclass
class MovementRecorder:
    """Samples /metrics of one or more processes and keeps the series that moved."""

    initial: dict[tuple[str, Labels], float] = field(default_factory=initial_samples)
    moved: set[tuple[str, Labels]] = field(default_factory=set)
    seen: set[tuple[str, Labels]] = field(default_factory=set)

    def sample_text(self, text: str) -> None:
        for key, value in _samples(text_string_to_metric_families(text)).items():
            self.seen.add(key)
            if value != self.initial.get(key, 0.0):
                self.moved.add(key)

    def sample_url(self, metrics_url: str) -> None:
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            self.sample_text(response.read().decode())

    def unmoved(self, expectations: Iterable[Expectation], families: Iterable[str]) -> list[str]:
        """Families with no moved series, then expectations no moved series meets."""
        moved_families = {name for name, _ in self.moved}
        problems = [
            f"{name}: no series moved" for name in sorted(families) if name not in moved_families
        ]
        for expectation in expectations:
            if not any(
                name == expectation.family and expectation.met_by(dict(labels))
                for name, labels in self.moved
            ):
                problems.append(f"never moved: {expectation}")
        return problems


def preseeded_expectations() -> list[Expectation]:
    """Each (family, label, value) a fresh Metrics creates at 0."""
    found = set()
    for (name, labels), _ in initial_samples().items():
        for label, value in labels:
            found.add(Expectation(name, ((label, value),), "pre-seeded"))
    return sorted(found, key=str)


def bucket_expectations() -> list[Expectation]:
    return [Expectation(EVENTS, (("bucket", str(bucket)),), "Bucket") for bucket in Bucket]


def _section_8() -> str:
    text = DESIGN.read_text()
    match = re.search(r"^## 8\. .*?(?=^## )", text, flags=re.M | re.S)
    assert match, f"{DESIGN} has no section 8"
    return match.group()


def _rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def documented_expectations() -> list[Expectation]:
    """docs/design.md §8: each bucket's reason values, and the values a family's row lists
    after a colon (they belong to the family's last label)."""
    expectations = []
    buckets = {str(bucket) for bucket in Bucket}
    for row in _rows(_section_8()):
        names = re.findall(r"`([^`]+)`", row[0])
        if len(row) == 3 and len(names) == 1 and names[0] in buckets:
            for reason in re.findall(r"`([^`]+)`", row[1]):
                pair = (("bucket", names[0]), ("reason", reason))
                expectations.append(Expectation(EVENTS, pair, "docs/design.md §8 buckets"))
        elif len(row) == 3 and len(names) == 1 and names[0].startswith("zen_watcher_"):
            listed = re.search(r":\s*(.+)$", row[2])
            label_names = [label.strip() for label in row[1].split(",") if label.strip()]
            if listed and label_names:
                for value in listed.group(1).split(","):
                    one = ((label_names[-1], value.strip().strip("`")),)
                    expectations.append(Expectation(names[0], one, "docs/design.md §8"))
    return expectations


def every_expectation() -> list[Expectation]:
    return preseeded_expectations() + bucket_expectations() + documented_expectations()
